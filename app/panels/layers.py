"""Layers panel: every synthesis layer with its shape; pick one to see its feature maps, their statistics and FFT."""

import dearpygui.dearpygui as dpg

from app.panels.base import Panel

OUTPUT_ITEM = "output image"


def shape_text(shape):
    """[1, C, H, W] -> 'C x H x W' (the batch of one says nothing)."""
    shape = tuple(shape)[1:] if len(shape) == 4 else tuple(shape)
    return " x ".join(str(s) for s in shape) if shape else "?"


class LayersPanel(Panel):
    title = "Layers"
    default_open = False

    def __init__(self, ctx):
        super().__init__(ctx)
        self.layers = []  # (name, shape) pairs
        self.items = [OUTPUT_ITEM]

    def build(self):
        dpg.add_listbox([OUTPUT_ITEM], tag="layer_list", num_items=8, width=-1, callback=self.on_pick)
        with dpg.group(horizontal=True):
            dpg.add_text("View")
            self.control("channel_mode", tag="channel_mode")
        self.control("channel", tag="channel", width=-130)
        self.control("grid_channels", tag="grid_channels", width=-130)
        with dpg.group(horizontal=True):
            dpg.add_text("Normalise")
            self.control("normalize", tag="normalize")
        self.control("fft", tag="fft")
        self.control("gain_db", tag="gain_db", width=-130, fmt="%.1f dB")
        dpg.add_text("", tag="layer_stats", color=(170, 180, 190))

    def on_widget(self, sender, value, user_data=None):
        super().on_widget(sender, value, user_data)
        last = self.last_base_channel()
        if last is not None and self.ctx.state["channel"] > last:
            # Joins the edit just made (one undo step): rgb needs three channels from the base.
            self.ctx.state.adjust({"channel": last})
        self.sync()  # the channel range depends on the view mode

    def last_base_channel(self):
        channels = self.current_channels()
        if not channels:
            return None
        if self.ctx.state["channel_mode"] == "rgb" and channels >= 3:
            return channels - 3
        return channels - 1

    def item_for(self, name):
        for (layer, shape), item in zip(self.layers, self.items[1:]):
            if layer == name:
                return item
        return OUTPUT_ITEM

    def on_pick(self, sender, item):
        name = None
        for (layer, _), label in zip(self.layers, self.items[1:]):
            if label == item:
                name = layer
        self.ctx.edit("layer", name, coalesce=False)
        self.sync()

    def on_model(self, info):
        self.layers = [(name, tuple(shape)) for name, shape in info.get("layers") or []]
        self.items = [OUTPUT_ITEM] + [f"{name}   {shape_text(shape)}" for name, shape in self.layers]
        dpg.configure_item("layer_list", items=self.items)
        if self.ctx.state["layer"] not in {name for name, _ in self.layers}:
            self.ctx.state.adjust({"layer": None})  # adapting to the network: that layer is not in it
        self.sync()

    def current_channels(self):
        for name, shape in self.layers:
            if name == self.ctx.state["layer"] and shape:
                return int(shape[-3]) if len(shape) >= 3 else int(shape[0])  # channels of [N,] C, H, W
        return 0

    def sync(self):
        super().sync()
        dpg.set_value("layer_list", self.item_for(self.ctx.state["layer"]))
        channels = self.current_channels()
        on_layer = self.ctx.state["layer"] is not None
        for tag in ("channel_mode", "channel", "normalize"):
            dpg.configure_item(tag, enabled=on_layer)
        # The channel count is the grid's alone: rgb shows three, one shows one.
        dpg.configure_item("grid_channels", enabled=on_layer and self.ctx.state["channel_mode"] == "grid")
        if channels:
            dpg.configure_item("channel", max_value=max(0, self.last_base_channel()))
            dpg.configure_item("grid_channels", max_value=max(1, channels))

    def on_frame(self, frame):
        stats = frame.stats
        if not stats:
            dpg.set_value("layer_stats", "")
            return
        lines = []
        for prefix, what in (("", "all channels"), ("sel_", "shown")):
            values = [f"{key} {stats[prefix + key]:.3g}" for key in ("mean", "std", "min", "max") if prefix + key in stats]
            if values:
                lines.append(f"{what}:\n  " + "   ".join(values))
        dpg.set_value("layer_stats", "\n".join(lines))
