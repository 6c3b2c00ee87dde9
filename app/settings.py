"""The window's small settings file (last folders, display filter) under the user's config dir, XDG_CONFIG_HOME respected."""

import json
import os
from pathlib import Path


def config_dir():
    """STYLESCOPE_CONFIG_DIR, else $XDG_CONFIG_HOME/stylescope, else ~/.config/stylescope."""
    root = os.environ.get("STYLESCOPE_CONFIG_DIR") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "stylescope")
    return Path(root)


def read_settings():
    try:
        data = json.loads((config_dir() / "settings.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_setting(name, value):
    """Set one value; a read-only or missing home must not stop the explorer."""
    settings = read_settings()
    settings[name] = value
    try:
        config_dir().mkdir(parents=True, exist_ok=True)
        tmp = config_dir() / "settings.json.tmp"
        tmp.write_text(json.dumps(settings, indent=1, sort_keys=True))
        tmp.replace(config_dir() / "settings.json")
    except OSError:
        pass


def user_folder():
    """Where a new user's files go: ~/Pictures when there is one (XDG's pictures folder), else home."""
    home = Path.home()
    pictures = home / "Pictures"
    return pictures if pictures.is_dir() else home


def last_folder(purpose, fallback=None):
    """The folder last used for `purpose` ('network', 'session', 'vectors', 'export') if it still
    exists, else fallback (when it exists), else user_folder()."""
    folders = read_settings().get("folders")
    remembered = folders.get(purpose) if isinstance(folders, dict) else None
    for candidate in (remembered, fallback):
        if isinstance(candidate, (str, Path)) and str(candidate) and Path(candidate).expanduser().is_dir():
            return Path(candidate).expanduser()
    return user_folder()


def remember_folder(purpose, folder):
    folders = read_settings().get("folders")
    folders = dict(folders) if isinstance(folders, dict) else {}
    folders[purpose] = str(Path(folder).expanduser().resolve())
    write_setting("folders", folders)
