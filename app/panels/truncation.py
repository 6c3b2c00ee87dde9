"""Truncation and noise panel: psi and cutoff; noise mode, seed, global and per-layer strengths."""

import dearpygui.dearpygui as dpg

from app.panels.base import Panel
from app.state import PARAM_BY_NAME

NOT_MEASURED = object()


class TruncationPanel(Panel):
    title = "Truncation and noise"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.num_ws = 0
        self.noise_layers = []
        self.layer_sliders = {}
        self.prepared_for = None  # (layer, state version) of the last noise drag prepared
        self.truncation_applies = True  # False while a loaded or frozen w is used (see tick)
        self.usage = {}  # layer (None: all) -> mean change in levels of 255 with its noise off
        self.usage_for = NOT_MEASURED  # the network (pkl; None: the default model) measured or being measured
        self.usage_todo = []  # layers still to measure, one worker call at a time
        self.usage_call = None

    def build(self):
        self.control("truncation_psi", tag="truncation_psi", width=-130)
        with dpg.group(horizontal=True):
            dpg.add_checkbox(label="Cutoff", tag="cutoff_on", callback=self.on_cutoff)
            dpg.add_slider_int(label="first ws", tag="cutoff", width=-130, min_value=1, max_value=18,
                               default_value=8, callback=self.on_cutoff)
        with dpg.tooltip("cutoff"):
            dpg.add_text("Truncate only the first N ws (the coarse styles)")
        dpg.add_separator()
        with dpg.group(horizontal=True):
            dpg.add_text("Noise", tag="noise_label")
            self.control("noise_mode", tag="noise_mode")
        self.control("noise_seed", tag="noise_seed", width=150)
        self.control("noise_strength", tag="noise_strength", width=-130, fmt="%.2fx")
        dpg.add_text("", tag="noise_usage", wrap=390, color=(200, 180, 120), show=False)
        with dpg.tree_node(label="Per-layer strength", tag="noise_layers_node", default_open=False):
            dpg.add_text("beside each: mean change (of 255) without its noise", color=(130, 130, 140), wrap=380)
            dpg.add_group(tag="noise_layers")
        with dpg.item_handler_registry() as self.hover_handlers:
            dpg.add_item_hover_handler(callback=self.on_layer_slider_hovered)
        self.sync_cutoff()

    def on_cutoff(self, sender=None, value=None):
        on = dpg.get_value("cutoff_on")
        self.ctx.edit("truncation_cutoff", int(dpg.get_value("cutoff")) if on else None, coalesce=sender == "cutoff")

    def sync_cutoff(self):
        cutoff = self.ctx.state["truncation_cutoff"]
        dpg.set_value("cutoff_on", cutoff is not None)
        if cutoff is not None:
            dpg.set_value("cutoff", int(cutoff))
        dpg.configure_item("cutoff", enabled=cutoff is not None and self.truncation_applies)

    # --- how much the network uses its noise, measured once per network on the worker ----------
    def on_frame(self, frame):
        pkl = self.ctx.state["pkl"]
        if frame.preview or not self.noise_layers or self.usage_for == pkl or self.ctx.engine is None:
            return
        if getattr(frame.request, "pkl", None) != pkl:
            return
        self.usage_for, self.usage, self.usage_call = pkl, {}, None
        self.usage_todo = [None] + list(self.noise_layers)  # all noise first: the summary line
        self.say_usage("measuring how much this network uses its noise ...")

    def busy(self):
        return bool(self.usage_todo) or self.usage_call is not None

    def tick_usage(self):
        call = self.usage_call
        if call is not None and not call.done():
            return
        if call is not None:
            self.usage_call = None
            layer = self.usage_todo.pop(0)
            if call.error:
                self.usage_todo = []
                self.say_usage(f"noise use not measured: {call.error}")
                return
            self.usage[layer] = float(call.result)
            self.show_usage(layer)
        if self.usage_todo and self.usage_for == self.ctx.state["pkl"]:
            self.usage_call = self.ctx.engine.noise_usage(self.ctx.state, self.usage_todo[0])
        else:
            self.usage_todo = []

    def say_usage(self, text):
        dpg.set_value("noise_usage", text)
        dpg.configure_item("noise_usage", show=bool(text))  # no empty line where there is nothing to say

    def show_usage(self, layer):
        from app import bridge

        self.ctx.note("noise_usage", layer=layer, levels=self.usage[layer], pkl=self.usage_for)
        if layer is None:
            self.say_usage(bridge.noise_usage_summary(self.usage[None]))
        elif layer in self.layer_sliders:
            levels = self.usage[layer]
            dpg.configure_item(self.layer_sliders[layer], label=f"{layer}  {levels:.2f}" if levels < 10 else
                               f"{layer}  {levels:.0f}")

    def tick(self):
        self.tick_usage()
        # A w from the Vectors panel is used as it is (truncation acts on the mapping's output):
        # psi and cutoff would change nothing, so they are greyed out meanwhile.
        latent = self.ctx.state["latent"]
        applies = latent is None or latent[0] != "w"
        if applies != self.truncation_applies:
            self.truncation_applies = applies
            for tag in ("truncation_psi", "cutoff_on"):
                dpg.configure_item(tag, enabled=applies)
            self.sync_cutoff()

    def layout_state(self):
        """What moves this panel's controls: the per-layer sliders folded or not."""
        return bool(dpg.get_value("noise_layers_node"))

    def on_layer_strength(self, sender, value, layer):
        strengths = dict(self.ctx.state["noise_layer_strength"])
        strengths[layer] = round(float(value), 4)
        if strengths[layer] == 1.0:
            del strengths[layer]  # 1.0 is the default: keep the request short
        self.ctx.edit("noise_layer_strength", strengths)

    def on_layer_slider_hovered(self, sender, item):
        """The mouse is over a layer's slider: the renderer prepares that layer for a drag (its
        convolution before noise), so that the drag's first step is as quick as the later ones.
        Not on the press: a click on a slider moves its value in the same UI frame. Once per layer
        and state, when the renderer is idle (hover handlers fire every frame)."""
        name = (dpg.get_item_alias(item) or "")[len("noise_layer_"):]
        wanted = (name, self.ctx.state.version)
        if name not in self.layer_sliders or wanted == self.prepared_for or dpg.is_item_active(item):
            return  # (while it is dragged, each step keeps the layer's convolution for the next)
        if self.ctx.engine.prepare_noise_drag(self.ctx.state, name):
            self.prepared_for = wanted
            self.ctx.note("prepare_noise_drag", layer=name)

    def rebuild_layer_sliders(self):
        dpg.delete_item("noise_layers", children_only=True)
        self.layer_sliders = {}
        if not self.noise_layers:
            dpg.add_text("(this network has no noise inputs)", parent="noise_layers", color=(120, 120, 120))
            return
        strengths = dict(self.ctx.state["noise_layer_strength"])
        scale = PARAM_BY_NAME["noise_strength"]  # a layer's multiplier slides over the global one's range
        for name in self.noise_layers:
            self.layer_sliders[name] = dpg.add_slider_float(
                label=name, tag=f"noise_layer_{name}", parent="noise_layers", width=-130, min_value=scale.low,
                max_value=scale.high, format="%.2fx",
                default_value=float(strengths.get(name, 1.0)), callback=self.on_layer_strength, user_data=name)
            dpg.bind_item_handler_registry(self.layer_sliders[name], self.hover_handlers)
            if name in self.usage:
                self.show_usage(name)

    def on_model(self, info):
        self.num_ws = int(info.get("num_ws") or 0)
        dpg.configure_item("cutoff", max_value=max(1, self.num_ws))
        self.noise_layers = list(info.get("noise_layers") or [])
        if info.get("pkl") != self.usage_for:
            self.usage, self.usage_todo, self.usage_call, self.usage_for = {}, [], None, NOT_MEASURED
            self.say_usage("")
        self.rebuild_layer_sliders()
        # StyleGAN3 has no noise inputs: its noise controls would change nothing, so they are greyed out.
        has_noise = bool(self.noise_layers)
        for tag in ("noise_mode", "noise_seed", "noise_strength"):
            dpg.configure_item(tag, enabled=has_noise)
        dpg.set_value("noise_label", "Noise" if has_noise else "Noise (none in this network)")
        dpg.configure_item("noise_layers_node", show=has_noise)  # no layers to list

    def sync(self):
        super().sync()
        self.sync_cutoff()
        strengths = dict(self.ctx.state["noise_layer_strength"])
        for name, slider in self.layer_sliders.items():
            dpg.set_value(slider, float(strengths.get(name, 1.0)))
