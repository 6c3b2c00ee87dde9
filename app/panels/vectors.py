"""Vectors panel: a z or w loaded from a file or frozen from the image, used instead of the seeds,
and directions in W (from files, between two seeds, or the network's principal axes) to move it along."""

from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from app import bridge
from app.panels.base import Panel
from app.panels.latent import combined_seed
from app.state import DIRECTION_LIMIT
from renderer.request import MIX_GROUPS
from renderer.request.fields import MAX_LATENT
from renderer.request.latents import ws_rows

MAX_DIRECTIONS = 8
SEED_DIRECTION_LIMIT = 2.0  # a direction between two seeds' ws: 1 reaches the second seed's ws
PCA_DIRECTION_LIMIT = 5.0  # a principal direction's strength is in standard deviations
PCA_LAYER_GROUPS = ["all", *MIX_GROUPS]
LATENT_EXTENSIONS = (".npy", ".npz")


def _checked(array, what):
    """array, if every value is finite and within the request's latent bound; else ValueError."""
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: holds NaN or infinite values")
    if np.abs(array).max(initial=0.0) > MAX_LATENT:
        raise ValueError(f"{what}: values beyond +-{MAX_LATENT:g}")
    return array


def fit_w(array, info, what="w"):
    """Rows [1 or num_ws][w_dim] (as tuples) from an array meant as a w of this network (a batch of
    1 is dropped, a single row stands for every layer); ValueError says why it does not fit."""
    try:
        shape = list(np.shape(array))
        array = ws_rows(array)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: not an array of numbers") from None
    w_dim, num_ws = info.get("w_dim"), info.get("num_ws")
    if array.ndim != 2 or array.shape[1] != w_dim or array.shape[0] not in (1, num_ws):
        raise ValueError(f"{what}: shape {shape} does not fit this network ([{w_dim}] or [{num_ws}, {w_dim}])")
    _checked(array, what)
    return tuple(tuple(float(x) for x in row) for row in array)


def fit_z(array, info):
    """A z of this network (as a tuple) from an array of z_dim values; ValueError says why not."""
    try:
        flat = np.asarray(array, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError("z: not an array of numbers") from None
    if flat.size != info.get("z_dim"):
        raise ValueError(f"z: {flat.size} values, this network's z_dim is {info.get('z_dim')}")
    return tuple(float(x) for x in _checked(flat, "z"))


def latent_from_file(path, info):
    """The state's latent value, (kind, name, values), from a .npy/.npz z or w file (latent_files.load_latent
    decides which) that fits the network described by info."""
    kind, array = bridge.read_latent_file(path)
    values = fit_z(array, info) if kind == "z" else fit_w(array, info)
    return kind, Path(path).name, values


def direction_from_file(path, info):
    """A direction entry (name, strength 0, limit, rows) from a .npy/.npz file (latent_files.load_direction)."""
    rows = fit_w(bridge.read_direction_file(path), info, what="direction")
    return Path(path).name, 0.0, DIRECTION_LIMIT, rows


def describe_latent(latent):
    """Two short lines whatever is used, so that the controls below never move."""
    if latent is None:
        return "Using the seeds (Latent panel).\nLoad a z or a w, or freeze the image's w."
    kind, name, values = latent
    shape = f"{len(values)} x {len(values[0])}" if kind == "w" else f"{len(values)}"
    name = name if len(name) <= 24 else name[:21] + "..."
    second = "Used as it is: psi and cutoff do not apply." if kind == "w" else "Mapped with psi and cutoff."
    return f"Using {kind} {shape} from {name}.\n{second}"


class VectorsPanel(Panel):
    title = "Vectors"
    default_open = False

    def build(self):
        with dpg.group(horizontal=True):
            dpg.add_input_text(tag="latent_path", hint="z or w file (.npy / .npz)", width=230, on_enter=True,
                               callback=lambda s, v: self.load_latent(v))
            dpg.add_button(label="...", tag="latent_browse", callback=lambda: self.open_dialog("latent"))
            dpg.add_button(label="Load", tag="latent_load",
                           callback=lambda: self.load_latent(dpg.get_value("latent_path")))
        with dpg.group(horizontal=True):
            dpg.add_button(label="Freeze w", tag="latent_freeze", callback=self.on_freeze)
            dpg.add_button(label="Back to seeds", tag="latent_clear", callback=self.on_clear_latent)
        dpg.add_text("", tag="latent_info", color=(150, 150, 150), wrap=380)
        dpg.add_spacer(height=2)
        dpg.add_text("Directions in W (added to every w)")
        with dpg.group(tag="direction_rows"):
            pass
        with dpg.group(horizontal=True):
            dpg.add_input_text(tag="direction_path", hint="direction file (.npy / .npz)", width=230,
                               on_enter=True, callback=lambda s, v: self.add_direction_file(v))
            dpg.add_button(label="...", tag="direction_browse", callback=lambda: self.open_dialog("direction"))
            dpg.add_button(label="Add", tag="direction_add_file",
                           callback=lambda: self.add_direction_file(dpg.get_value("direction_path")))
        with dpg.group(horizontal=True):
            dpg.add_text("From seed")
            dpg.add_input_int(tag="direction_from", width=110, default_value=0, min_value=0, min_clamped=True)
            dpg.add_text("to")
            dpg.add_input_int(tag="direction_to", width=110, default_value=1, min_value=0, min_clamped=True)
            dpg.add_button(label="Add", tag="direction_add_seeds", callback=self.on_add_seed_direction)
        with dpg.group(horizontal=True):
            dpg.add_text("From the image to seed")
            dpg.add_input_int(tag="direction_toward", width=110, default_value=1, min_value=0, min_clamped=True)
            dpg.add_button(label="Add", tag="direction_add_toward", callback=self.on_add_toward_direction)
        with dpg.tooltip("direction_add_toward"):
            dpg.add_text("Strength 0.5 blends the image's w (a loaded vector's too) halfway with that\n"
                         "seed's; 1 reaches it.")
        with dpg.group(horizontal=True):
            dpg.add_text("Principal")
            dpg.add_input_int(tag="pca_index", width=110, default_value=0, min_value=0, min_clamped=True)
            dpg.add_combo(PCA_LAYER_GROUPS, tag="pca_layers", default_value="all", width=90)
            dpg.add_button(label="Add", tag="direction_add_pca", callback=self.on_add_principal_direction)
        with dpg.tooltip("pca_index"):
            dpg.add_text("GANSpace: the principal axes of W (0 has the most variance), from the\n"
                         "network's own mapping of 5000 random z. Strength in standard deviations;\n"
                         "on every w or on one group's ws only (coarse 4-8 px, middle 16-32, fine 64+).")
        self.ctx.text_inputs.extend(["latent_path", "direction_path", "direction_from", "direction_to",
                                     "direction_toward", "pca_index"])
        self.dialog_target = "latent"
        self.calls = []  # (what, WorkerCall, apply, pkl) waiting for the worker: see start()
        self.add_file_dialog("latent_dialog", LATENT_EXTENSIONS, self.on_dialog, kind="Vector files", purpose="vectors")
        self.rebuild_direction_rows()
        self.show_latent()

    def busy(self):
        return bool(self.calls)  # worker calls whose results are still to come

    def network_info(self):
        """The loaded network's dims, or None (with a status line) before one is on screen or while
        another is being opened: a vector is checked against the network it will go to."""
        info = self.ctx.model_info
        if not info or info.get("pkl") != self.ctx.state["pkl"]:
            self.ctx.set_status("vectors: wait until the network is on screen", error=True)
            return None
        return info

    def open_dialog(self, target):
        self.dialog_target = target
        from app.file_dialog import show_file_dialog

        show_file_dialog("latent_dialog", title="Load a z or w vector" if target == "latent" else "Add a direction")

    def on_dialog(self, sender, app_data):
        path = self.dialog_path(app_data)
        if not path:
            return
        if self.dialog_target == "latent":
            dpg.set_value("latent_path", path)
            self.load_latent(path)
        else:
            dpg.set_value("direction_path", path)
            self.add_direction_file(path)

    def read_file(self, path, reader, failure):
        """reader(path, network info) for a typed or chosen file, or None with the reason in the status line."""
        path = (path or "").strip()
        info = self.network_info()
        if not path or info is None:
            return None
        try:
            return reader(Path(path).expanduser(), info)
        except ValueError as error:  # ExportError included: unreadable, wrong shape, NaN
            self.ctx.set_status(f"{failure}: {error}".splitlines()[0], error=True)
            return None

    def load_latent(self, path):
        latent = self.read_file(path, latent_from_file, "vector not loaded")
        if latent is None:
            return
        self.ctx.edit("latent", latent, coalesce=False)
        self.ctx.set_status(f"loaded {latent[0]} from {latent[1]}")
        self.ctx.sync_panels()

    def on_freeze(self):
        """The image's w as it is now (truncation, blend and mixing baked in) becomes an editable
        vector; mixing is switched off, since it is already in that w."""
        if self.network_info() is None:
            return
        name = f"seed {combined_seed(self.ctx.state['seed_x'], self.ctx.state['seed_y'])} (frozen)"
        self.start("freeze w", self.ctx.engine.image_ws(self.ctx.state), lambda ws, info: self.freeze(name, ws, info))

    def freeze(self, name, ws, info):
        self.ctx.edit_many({"latent": ("w", name, fit_w(ws, info)), "mix_enabled": False}, coalesce=False)
        self.ctx.sync_panels()
        self.ctx.set_status("the image's w is frozen: directions move it; the seed controls go back to seeds")

    def on_clear_latent(self):
        self.ctx.edit("latent", None, coalesce=False)
        self.ctx.sync_panels()

    def add_direction_file(self, path):
        direction = self.read_file(path, direction_from_file, "direction not added")
        if direction is not None:
            self.add_direction(direction)

    def on_add_seed_direction(self):
        if self.network_info() is None:
            return
        start, end = int(dpg.get_value("direction_from")), int(dpg.get_value("direction_to"))
        if start == end:
            self.ctx.set_status("a direction needs two different seeds", error=True)
            return
        self.start(f"direction seed {start} -> {end}", self.ctx.engine.seed_direction(self.ctx.state, start, end),
                   lambda rows, info: self.add_direction((f"seed {start} -> {end}", 0.0, SEED_DIRECTION_LIMIT,
                                                          fit_w(rows, info, what="direction"))))

    def on_add_toward_direction(self):
        if self.network_info() is None:
            return
        seed = int(dpg.get_value("direction_toward"))
        self.start(f"direction to seed {seed}", self.ctx.engine.toward_seed(self.ctx.state, seed),
                   lambda rows, info: self.add_direction((f"image -> seed {seed}", 0.0, SEED_DIRECTION_LIMIT,
                                                          fit_w(rows, info, what="direction"))))

    def on_add_principal_direction(self):
        if self.network_info() is None:
            return
        index, layers = int(dpg.get_value("pca_index")), dpg.get_value("pca_layers") or "all"
        # A network's first principal directions map 5000 z (~0.6 s at 1024 px) on the worker.
        self.start("principal directions of W", self.ctx.engine.principal_direction(self.ctx.state, index, layers),
                   lambda rows, info: self.add_direction((f"PC{index} {layers}", 0.0, PCA_DIRECTION_LIMIT,
                                                          fit_w(rows, info, what="direction"))))

    def start(self, what, call, apply):
        """Wait for a WorkerCall (the network runs on the worker thread, never here) without
        blocking: tick() hands its result to apply(result, network info) once it is done."""
        self.calls.append((what, call, apply, self.ctx.state["pkl"]))
        self.ctx.set_status(f"{what} ...")

    def finish_calls(self):
        while self.calls and self.calls[0][1].done():
            what, call, apply, pkl = self.calls.pop(0)
            info = self.ctx.model_info
            if call.error is not None:
                self.ctx.set_status(f"{what}: {call.error}", error=True)
            elif pkl != self.ctx.state["pkl"] or not info or info.get("pkl") != pkl:
                self.ctx.set_status(f"{what}: the network changed meanwhile; nothing added", error=True)
            else:
                try:
                    apply(call.result, info)
                except ValueError as error:  # a result that does not fit the network: say so
                    self.ctx.set_status(f"{what}: {error}".splitlines()[0], error=True)

    def add_direction(self, direction):
        directions = list(self.ctx.state["directions"])
        if len(directions) >= MAX_DIRECTIONS:
            self.ctx.set_status(f"at most {MAX_DIRECTIONS} directions", error=True)
            return
        directions.append(direction)
        self.ctx.edit("directions", directions, coalesce=False)
        self.rebuild_direction_rows()
        self.ctx.set_status(f"direction added: {direction[0]} (drag its strength)")

    def on_direction_edit(self, sender, value, index_and_field):
        index, field = index_and_field
        directions = [list(d) for d in self.ctx.state["directions"]]
        if index >= len(directions):
            return
        if field == "remove":
            del directions[index]
        else:
            limit = directions[index][2]
            directions[index][1] = min(max(float(value), -limit), limit) if np.isfinite(value) else 0.0
        self.ctx.edit("directions", directions, coalesce=field == "strength")
        if field == "remove":
            self.rebuild_direction_rows()
        else:
            self.shown_directions = self.ctx.state["directions"]

    def rebuild_direction_rows(self):
        self.shown_directions = self.ctx.state["directions"]
        for child in dpg.get_item_children("direction_rows", 1) or []:
            dpg.delete_item(child)
        for index, (name, strength, limit, _rows) in enumerate(self.shown_directions):
            with dpg.group(horizontal=True, parent="direction_rows"):
                dpg.add_slider_float(label=name[:28], width=170, default_value=float(strength), min_value=-limit,
                                     max_value=limit, format="%.2f", tag=f"direction_{index}",
                                     callback=self.on_direction_edit, user_data=(index, "strength"))
                dpg.add_button(label="x", tag=f"direction_remove_{index}", callback=self.on_direction_edit,
                               user_data=(index, "remove"))

    def layout_state(self):
        """What moves this panel's controls: the direction rows."""
        return len(self.shown_directions)

    def tick(self):
        # The seed controls, keys, a drag on the image, animation and undo all can drop the vector:
        # the line that says what is used follows the state, whoever changed it.
        if self.shown_latent is not self.ctx.state["latent"]:
            self.show_latent()
        self.finish_calls()

    def show_latent(self):
        self.shown_latent = self.ctx.state["latent"]
        dpg.set_value("latent_info", describe_latent(self.shown_latent))

    def sync(self):
        super().sync()
        if self.shown_directions != self.ctx.state["directions"]:
            self.rebuild_direction_rows()
        self.show_latent()
