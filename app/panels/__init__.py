"""The panels on the right of the window, in the order they are shown; make_panels builds them."""

import importlib
import inspect

from app.panels.base import Panel

# One module per panel. "export" belongs to the export feature and is picked up when present.
PANEL_MODULES = ["network", "latent", "vectors", "project", "directions", "mixing", "truncation", "layers", "transform",
                 "drag", "export", "performance"]


def panel_classes():
    classes = []
    for name in PANEL_MODULES:
        try:
            module = importlib.import_module(f"app.panels.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"app.panels.{name}":
                continue  # an optional panel not written yet
            raise
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Panel) and cls is not Panel and cls.__module__ == module.__name__:
                classes.append(cls)
    return classes


def make_panels(ctx):
    """Every panel, each given the window's PanelContext (app/panels/base.py)."""
    return [cls(ctx) for cls in panel_classes()]
