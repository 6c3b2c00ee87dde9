"""Requests read from files (request/session JSON, PNG exports): bounded parsing, and only a network the user chose."""

# A request file names its network by path. Read from a file someone sent, that path could be
# anything on this machine, so it is opened only when it is the network the user chose
# (--pkl, or the one open in the window), or when a file of that name with the recorded
# sha256 lies beside the request file. Otherwise the user is asked.

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from models.errors import clean_line
from models.limits import read_json_file
from renderer.request import RenderRequest

# Optional keys beside the request's fields in a session / request JSON (the PNG has its own).
MODEL_NAME_KEY = "model_name"
MODEL_SHA256_KEY = "model_sha256"


class NetworkNotChosen(ValueError):
    """A request from a file names a network the user has not chosen; `kept` is the request with the
    user's network instead, `wanted` the path it names."""

    def __init__(self, message, kept, wanted):
        super().__init__(message)
        self.kept = kept
        self.wanted = wanted


@dataclass(frozen=True)
class SavedRequest:
    """A request read from a file, with what the file says about its network."""

    request: RenderRequest
    source: Path
    model_name: str = ""
    model_sha256: str = ""


def request_from_data(data, source, ws_resolutions=None):
    """A SavedRequest from parsed JSON: a request, or a session {"request": {...}} as older files wrote."""
    if isinstance(data, dict) and isinstance(data.get("request"), dict):
        data = data["request"]
    if not isinstance(data, dict):
        raise ValueError(f"{clean_line(source)}: expected a JSON object (a request or a session)")
    data = dict(data)
    name, sha256 = data.pop(MODEL_NAME_KEY, ""), data.pop(MODEL_SHA256_KEY, "")
    try:
        request = RenderRequest.from_dict(data, ws_resolutions)  # resolves an old file's named mix group
    except ValueError as error:
        raise ValueError(f"{clean_line(source)}: {clean_line(error)}") from None
    return SavedRequest(request, Path(source), _text(name), _text(sha256))


def read_request_file(path, ws_resolutions=None):
    """A request or session JSON file, its size and nesting bounded before parsing."""
    data = read_json_file(path, f"{clean_line(path)}")
    return request_from_data(data, path, ws_resolutions)


def read_png_request(path):
    """The request an exported PNG carries (renderer.png_metadata.read_png_metadata, bounded)."""
    from renderer.png_metadata import read_png_metadata

    meta = read_png_metadata(path)
    return SavedRequest(meta.request(), Path(path), meta.model_name, meta.model_sha256)


def read_saved_request(path):
    """A request from a .png export or a .json request / session."""
    return read_png_request(path) if Path(path).suffix.lower() == ".png" else read_request_file(path)


def _text(value):
    return value if isinstance(value, str) else ""


def _same_file(a, b):
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return False


def choose_network(saved, chosen=None, where="pass --pkl FILE"):
    """The saved request with a network the user chose.

    chosen: the network the user gave (--pkl) or has open (None: the embedded default model).
    The request's own path is used when it is `chosen`, else a file of its name beside the
    request file whose sha256 is the recorded one; otherwise NetworkNotChosen, whose message
    says which file the request wants and `where` to give it.
    """
    from renderer.png_metadata import file_sha256

    request = saved.request
    if request.pkl is None or (chosen is not None and _same_file(request.pkl, chosen)):
        return request
    name = Path(request.pkl).name
    beside = saved.source.parent / name
    if saved.model_sha256 and beside.is_file() and not beside.is_dir():
        try:
            if file_sha256(beside) == saved.model_sha256:
                return dataclasses.replace(request, pkl=str(beside.resolve()))
        except OSError:
            pass
    kept = dataclasses.replace(request, pkl=chosen)
    found = "" if not beside.is_file() else " (the file of that name beside it has another sha256)"
    raise NetworkNotChosen(
        f"{clean_line(saved.source, 120)} names the network {clean_line(name, 80)}, which is not the one "
        f"you chose and is not beside it{found}; {where}", kept, request.pkl)


def session_dict(request):
    """A session file's JSON: the request that `run_app.py frame --request` reads, plus its network's
    file name and sha256 (a session opened elsewhere finds its network beside it by them)."""
    from renderer.png_metadata import file_sha256

    out = request.to_dict()
    if request.pkl and Path(request.pkl).is_file():
        out[MODEL_NAME_KEY], out[MODEL_SHA256_KEY] = Path(request.pkl).name, file_sha256(request.pkl)
    return out


def read_session_file(path, chosen, ws_resolutions=None):
    """(request, wanted network path or None, notes) from a session file, for a window whose open
    network is `chosen`. The file is parsed with its size and nesting bounded. Its network is kept
    only when it is `chosen` or lies beside the file with the recorded sha256; otherwise the request
    has `chosen` instead and `wanted` names the file it asks for. ws_resolutions resolve an older
    file's named mix group."""
    saved = read_request_file(path, ws_resolutions)
    try:
        return choose_network(saved, chosen, "its path is in the Network panel: press Load to open it"), None, []
    except NetworkNotChosen as refusal:
        return refusal.kept, refusal.wanted, [str(refusal)]
