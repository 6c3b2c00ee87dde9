"""Directions panel: SeFa directions, StyleSpace channel sliders (search and find-from-examples), directions
learned from images labelled positive or negative, and a sweep video, grid or file of any of them."""

import dataclasses
import time
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from app import bridge
from app.panels.base import Panel
from app.panels.latent import combined_seed
from renderer.request import MIX_GROUPS

SEFA_LIMIT = 10.0  # a SeFa direction is unit length: its strength is the paper's distance in W
LEARNED_LIMIT = 10.0  # a learned direction (a unit normal) likewise
STYLE_LIMIT = 20.0  # a StyleSpace slider, in standard deviations of its channel
MAX_CHANNELS = 8
SEFA_GROUPS = ["all", *MIX_GROUPS]


class DirectionsPanel(Panel):
    title = "Directions"
    default_open = False

    def build(self):
        self.calls = []  # (what, WorkerCall, apply, pkl): as the Vectors panel waits for the worker
        self.positive, self.negative = [], []  # labelled examples: (seed or name, w [w_dim])
        self.found = []  # the last find-from-examples result
        dpg.add_text("SeFa: closed-form directions of the style weights")
        with dpg.group(horizontal=True):
            dpg.add_input_int(tag="sefa_index", width=90, default_value=0, min_value=0, min_clamped=True)
            dpg.add_combo(SEFA_GROUPS, tag="sefa_layers", default_value="all", width=80)
            dpg.add_input_text(tag="sefa_range", hint="or ws 4-7", width=70)
            dpg.add_button(label="Add", tag="sefa_add", callback=self.on_add_sefa)
        with dpg.tooltip("sefa_index"):
            dpg.add_text("Shen & Zhou 2021: the eigenvectors of A^T A, A the chosen layers' style\n"
                         "affines (each channel's row normalised). 0 is the strongest. Applied to\n"
                         "the chosen ws only; strength = distance in W along the unit direction,\n"
                         "the paper's unit (its figures use about -3 to 3).")
        dpg.add_separator()
        dpg.add_text("StyleSpace channels (strength in the channel's std)")
        with dpg.group(horizontal=True):
            dpg.add_input_text(tag="style_search", hint="layer:channel, e.g. b16.conv0:12 or 3:12", width=250,
                               on_enter=True, callback=lambda: self.on_add_channel())
            dpg.add_button(label="Add", tag="style_add", callback=lambda: self.on_add_channel())
        with dpg.group(horizontal=True):
            dpg.add_input_text(tag="style_examples", hint="example seeds sharing something, 1,5,9", width=250)
            dpg.add_button(label="Find", tag="style_find", callback=self.on_find_channels)
        with dpg.tooltip("style_examples"):
            dpg.add_text("Wu et al. 2021: the channels whose styles the examples share most\n"
                         "(mean distance from the average in std, over its spread across them).\n"
                         "Empty: the examples labelled + below. Click a result to add its slider.")
        with dpg.group(tag="style_found"):
            pass
        with dpg.group(tag="style_rows"):
            pass
        dpg.add_separator()
        dpg.add_text("Learned from labelled images (linear SVM in W)")
        with dpg.group(horizontal=True):
            dpg.add_button(label="+ positive", tag="learn_positive", callback=lambda: self.on_label(True))
            dpg.add_button(label="- negative", tag="learn_negative", callback=lambda: self.on_label(False))
            dpg.add_button(label="Clear", tag="learn_clear", callback=self.on_clear_labels)
        dpg.add_text("", tag="learn_counts", color=(150, 150, 150))
        with dpg.group(horizontal=True):
            dpg.add_checkbox(label="orthogonal to the other directions", tag="learn_orthogonal")
            dpg.add_button(label="Fit", tag="learn_fit", callback=self.on_fit)
        dpg.add_separator()
        dpg.add_text("Sweep or save one edit")
        with dpg.group(horizontal=True):
            dpg.add_combo([], tag="edit_pick", width=170)
            dpg.add_button(label="Video", tag="edit_video", callback=self.on_sweep_video)
            dpg.add_button(label="Grid", tag="edit_grid", callback=self.on_sweep_grid)
            dpg.add_button(label=".npy", tag="edit_save", callback=self.on_save)
        with dpg.group(horizontal=True):
            dpg.add_text("grid seeds")
            dpg.add_input_text(tag="edit_grid_seeds", default_value="0-3", width=70)
            dpg.add_text("steps")
            dpg.add_input_int(tag="edit_grid_steps", default_value=5, min_value=2, max_value=15,
                              min_clamped=True, max_clamped=True, width=80)
        with dpg.tooltip("edit_video"):
            dpg.add_text("Video (Export panel's folder and frames): the edit from -strength to +strength.\n"
                         "Grid: one row per seed, the columns from -strength to +strength.")
        self.ctx.text_inputs.extend(["sefa_index", "sefa_range", "style_search", "style_examples",
                                     "edit_grid_seeds", "edit_grid_steps"])
        self.show_counts()
        self.rebuild_channel_rows()

    # --- waiting for the worker (the network never runs on this thread) ---------------------
    def ready(self):
        info = self.ctx.model_info
        if not info or info.get("pkl") != self.ctx.state["pkl"]:
            self.ctx.set_status("directions: wait until the network is on screen", error=True)
            return False
        return True

    def start(self, what, call, apply):
        self.calls.append((what, call, apply, self.ctx.state["pkl"]))
        self.ctx.set_status(f"{what} ...")

    def busy(self):
        return bool(self.calls)  # worker calls whose results are still to come

    def tick(self):
        while self.calls and self.calls[0][1].done():
            what, call, apply, pkl = self.calls.pop(0)
            if call.error is not None:
                self.ctx.set_status(f"{what}: {call.error}", error=True)
            elif pkl != self.ctx.state["pkl"]:
                self.ctx.set_status(f"{what}: the network changed meanwhile; nothing added", error=True)
            else:
                apply(call.result)
        if self.shown_channels != self.ctx.state["style_channels"]:
            self.rebuild_channel_rows()
        self.refresh_picks()

    # --- SeFa ------------------------------------------------------------------------------
    def on_add_sefa(self):
        if not self.ready():
            return
        index = int(dpg.get_value("sefa_index"))
        layers = (dpg.get_value("sefa_range") or "").strip() or dpg.get_value("sefa_layers") or "all"
        vectors = self.ctx.panel("Vectors")
        self.start("SeFa direction", self.ctx.engine.sefa_direction(self.ctx.state, layers, index),
                   lambda rows: vectors.add_direction((f"SeFa{index} {layers}", 0.0, SEFA_LIMIT,
                                                       tuple(tuple(float(x) for x in row) for row in rows))))

    # --- StyleSpace ------------------------------------------------------------------------
    def on_add_channel(self, text=None):
        if not self.ready():
            return
        text = text if text is not None else dpg.get_value("style_search")
        self.start(f"style channel {text}", self.ctx.engine.style_channel(self.ctx.state, text), self.add_channel)

    def add_channel(self, found):
        layer, channel, std = found[:3]
        channels = list(self.ctx.state["style_channels"])
        if any((c[0], c[1]) == (layer, channel) for c in channels):
            self.ctx.set_status(f"{layer}:{channel} is already there")
            return
        if len(channels) >= MAX_CHANNELS:
            self.ctx.set_status(f"at most {MAX_CHANNELS} style channels", error=True)
            return
        channels.append((layer, int(channel), 0.0, float(std)))
        self.ctx.edit("style_channels", channels, coalesce=False)
        self.rebuild_channel_rows()
        self.ctx.set_status(f"style channel {layer}:{channel} added (std {std:.3g}; drag its strength)")

    def on_find_channels(self):
        if not self.ready():
            return
        text = (dpg.get_value("style_examples") or "").strip()
        try:
            seeds = [int(s) for s in text.replace(" ", "").split(",") if s] if text else \
                [seed for seed, _ in self.positive if isinstance(seed, int)]
        except ValueError:
            self.ctx.set_status(f"example seeds {text!r}: expected a list like 1,5,9", error=True)
            return
        self.start("channels from examples", self.ctx.engine.example_channels(self.ctx.state, seeds),
                   self.show_found)

    def show_found(self, found):
        self.found = found
        for child in dpg.get_item_children("style_found", 1) or []:
            dpg.delete_item(child)
        with dpg.group(parent="style_found", horizontal=False):
            for index, (layer, channel, score, mean, std) in enumerate(found[:6]):
                dpg.add_button(label=f"{layer}:{channel}  score {score:.1f}, {mean:+.1f} std", tag=f"style_found_{index}",
                               callback=lambda s, a, item: self.add_channel((item[0], item[1], item[4])),
                               user_data=(layer, channel, score, mean, std))
        self.ctx.set_status(f"channels the examples share: {', '.join(f'{f[0]}:{f[1]}' for f in found[:3])} ...")

    def on_channel_edit(self, sender, value, index_and_field):
        index, field = index_and_field
        channels = [list(c) for c in self.ctx.state["style_channels"]]
        if index >= len(channels):
            return
        if field == "remove":
            del channels[index]
        else:
            channels[index][2] = min(max(float(value), -STYLE_LIMIT), STYLE_LIMIT) if np.isfinite(value) else 0.0
        self.ctx.edit("style_channels", channels, coalesce=field == "strength")
        if field == "remove":
            self.rebuild_channel_rows()
        else:
            self.shown_channels = self.ctx.state["style_channels"]

    def rebuild_channel_rows(self):
        self.shown_channels = self.ctx.state["style_channels"]
        for child in dpg.get_item_children("style_rows", 1) or []:
            dpg.delete_item(child)
        for index, (layer, channel, strength, _unit) in enumerate(self.shown_channels):
            with dpg.group(horizontal=True, parent="style_rows"):
                dpg.add_slider_float(label=f"{layer}:{channel}", width=170, default_value=float(strength),
                                     min_value=-STYLE_LIMIT, max_value=STYLE_LIMIT, format="%.1f std",
                                     tag=f"style_channel_{index}", callback=self.on_channel_edit,
                                     user_data=(index, "strength"))
                dpg.add_button(label="x", tag=f"style_remove_{index}", callback=self.on_channel_edit,
                               user_data=(index, "remove"))

    # --- learned directions ----------------------------------------------------------------
    def on_label(self, positive):
        if not self.ready():
            return
        state = self.ctx.state
        name = combined_seed(state["seed_x"], state["seed_y"]) if state["latent"] is None else state["latent"][1]
        target = self.positive if positive else self.negative

        def keep(w):
            target.append((name, np.asarray(w, dtype=np.float64)))
            self.show_counts()
            self.ctx.set_status(f"{'positive' if positive else 'negative'} example: {name}")

        self.start("label the image", self.ctx.engine.image_w(state), keep)

    def on_clear_labels(self):
        self.positive, self.negative = [], []
        self.show_counts()

    def show_counts(self):
        names = lambda items: ", ".join(str(n) for n, _ in items[-6:]) or "none"  # noqa: E731
        dpg.set_value("learn_counts", f"{len(self.positive)} positive ({names(self.positive)})\n"
                                      f"{len(self.negative)} negative ({names(self.negative)})")

    def on_fit(self):
        if not self.ready():
            return
        if not self.positive or not self.negative:
            self.ctx.set_status("label at least one positive and one negative image first", error=True)
            return
        others = []
        if dpg.get_value("learn_orthogonal"):
            for _name, _strength, _limit, rows in self.ctx.state["directions"]:
                rows = np.asarray(rows, dtype=np.float64)
                used = rows[np.abs(rows).sum(axis=1) > 0]
                if len(used):
                    others.append(used.mean(axis=0))
        vectors = self.ctx.panel("Vectors")
        count = sum(1 for d in self.ctx.state["directions"] if d[0].startswith("learned")) + 1
        label = f"learned {count} ({len(self.positive)}+/{len(self.negative)}-)"
        self.start("fit a direction", self.ctx.engine.fit_direction(
            np.stack([w for _, w in self.positive]), np.stack([w for _, w in self.negative]), others),
            lambda normal: vectors.add_direction((label, 0.0, LEARNED_LIMIT, (tuple(float(x) for x in normal),))))

    # --- sweep and save one edit -----------------------------------------------------------
    def edits(self):
        """{label: request with that one edit alone (strength as set, else a default)}."""
        request = self.ctx.engine.request_for(self.ctx.state)
        out = {}
        for name, strength, limit, rows in self.ctx.state["directions"]:
            strength = strength or limit / 2
            offset = np.asarray(rows, dtype=np.float64) * strength
            out[name] = dataclasses.replace(request, w_offset=offset, style_offsets=())
        for layer, channel, strength, unit in self.ctx.state["style_channels"]:
            strength = strength or STYLE_LIMIT / 3
            out[f"{layer}:{channel}"] = dataclasses.replace(request, w_offset=None,
                                                      style_offsets=((layer, channel, strength * unit),))
        return out

    def refresh_picks(self):
        names = [d[0] for d in self.ctx.state["directions"]] + \
            [f"{c[0]}:{c[1]}" for c in self.ctx.state["style_channels"]]
        if names != getattr(self, "shown_picks", None):
            self.shown_picks = names
            dpg.configure_item("edit_pick", items=names)
            if dpg.get_value("edit_pick") not in names:
                dpg.set_value("edit_pick", names[-1] if names else "")

    def picked(self):
        name = dpg.get_value("edit_pick")
        edits = self.edits()
        if name not in edits:
            self.ctx.set_status("add a direction or a style channel first, and pick it", error=True)
            return None, None
        return name, edits[name]

    def on_sweep_video(self):
        name, request = self.picked()
        export = self.ctx.panel("Export")
        if request is None or export is None:
            return
        settings = export.settings()
        path = export.output_path(settings, f"stylescope_sweep_{safe_name(name)}", ".mp4")
        work = bridge.export_work("direction_sweep", request, path, int(settings["sweep_frames"]), settings["fps"],
                                  settings["quality"])
        export.start(f"sweep of {name}", work)

    def on_sweep_grid(self):
        name, request = self.picked()
        export = self.ctx.panel("Export")
        if request is None or export is None:
            return
        path = export.output_path(export.settings(), f"stylescope_sweep_grid_{safe_name(name)}", ".png")
        try:
            work = bridge.export_work("direction_grid", request, dpg.get_value("edit_grid_seeds"),
                                      int(dpg.get_value("edit_grid_steps")), path)
        except ValueError as error:
            self.ctx.set_status(f"sweep grid: {error}", error=True)
            return
        export.start(f"sweep grid of {name}", work)

    def on_save(self):
        name = dpg.get_value("edit_pick")
        rows = next((d[3] for d in self.ctx.state["directions"] if d[0] == name), None)
        if rows is None:
            self.ctx.set_status("save: pick a direction in W (a style channel lives in the session and PNGs)",
                                error=True)
            return
        export = self.ctx.panel("Export")
        folder = Path(str(export.settings().get("folder"))) if export is not None else Path.cwd()
        path = folder.expanduser() / f"direction_{safe_name(name)}_{time.strftime('%Y%m%d-%H%M%S')}.npy"
        try:
            bridge.save_direction_file(rows, path)
        except (OSError, ValueError) as error:
            self.ctx.set_status(f"save: {error}".splitlines()[0], error=True)
            return
        self.ctx.set_status(f"saved {path}")

    def layout_state(self):
        return len(self.shown_channels), len(self.found)

    def sync(self):
        super().sync()
        if self.shown_channels != self.ctx.state["style_channels"]:
            self.rebuild_channel_rows()


def safe_name(name):
    """A label as part of a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
