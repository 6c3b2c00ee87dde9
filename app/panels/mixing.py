"""Style mixing panel: mix seed, a two-handle layer-range slider over the ws, presets, per-layer boxes, strength."""

import dearpygui.dearpygui as dpg

from app.panels.base import Panel
from renderer.request import MIX_GROUPS, mix_indices

RANGE_W, RANGE_H = 400, 58
RANGE_PAD = 14
TRACK_Y = 20
BOXES_PER_ROW = 9
PRESETS = tuple(MIX_GROUPS)  # the paper's coarse, middle and fine; one definition, in renderer.request


def preset_layers(resolutions, preset):
    """The w indices of a named group for a network's ws_resolutions; () when it has none (StyleGAN3's coarse)."""
    return preset_or_reason(resolutions, preset)[0]


def preset_or_reason(resolutions, preset):
    """(w indices, '') of a named group, or ((), why not) when the network has none of its layers."""
    try:
        return tuple(mix_indices(preset, resolutions)), ""
    except ValueError as error:
        return (), str(error).removeprefix("mix_layers: ")


class MixingPanel(Panel):
    title = "Style mixing"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.resolutions = []
        self.drag_handle = None  # 0: low handle, 1: high handle, while the mouse holds one
        self.anchor = 0  # the range end that stays put while a handle is dragged
        self.was_down = False
        self.boxes = []

    def build(self):
        with dpg.group(horizontal=True):
            dpg.add_checkbox(label="Style mixing", tag="mix_enabled", default_value=bool(self.ctx.state["mix_enabled"]),
                             callback=self.on_enable)
            self.bind("mix_enabled", "mix_enabled")
            self.control("mix_seed", tag="mix_seed", width=150)
        dpg.add_text("Layers taken from the mix seed (resolution under each)", color=(150, 150, 150))
        dpg.add_drawlist(RANGE_W, RANGE_H, tag="mix_range")
        with dpg.group(horizontal=True):
            for preset in PRESETS:
                dpg.add_button(label=preset.capitalize(), tag=f"mix_{preset}", callback=self.on_preset,
                               user_data=preset)
            dpg.add_button(label="None", tag="mix_none", callback=self.on_preset, user_data=None)
        dpg.add_group(tag="mix_boxes")
        self.control("mix_strength", tag="mix_strength", width=-110)
        self.draw_range()

    # --- geometry ----------------------------------------------------------------------------
    def slot_x(self, index):
        n = max(1, len(self.resolutions))
        return RANGE_PAD + (index + 0.5) * (RANGE_W - 2 * RANGE_PAD) / n

    def slot_at(self, x):
        n = len(self.resolutions)
        index = int((x - RANGE_PAD) / max(1e-6, (RANGE_W - 2 * RANGE_PAD) / max(1, n)))
        return min(max(index, 0), n - 1)

    def current_range(self):
        layers = self.ctx.state["mix_layers"]
        if not layers:
            return None
        return min(layers), max(layers)

    def test_geometry(self):
        """Screen x,y of each slot's centre on the range track, for the GUI tests."""
        if not self.resolutions or not dpg.is_item_visible("mix_range"):
            return {}
        x0, y0 = dpg.get_item_rect_min("mix_range")
        return {"mix_range_slots": [[x0 + self.slot_x(i), y0 + TRACK_Y] for i in range(len(self.resolutions))]}

    # --- drawing -----------------------------------------------------------------------------
    def draw_range(self):
        dpg.delete_item("mix_range", children_only=True)
        n = len(self.resolutions)
        if n == 0:
            dpg.draw_text((RANGE_PAD, TRACK_Y - 6), "load a network", parent="mix_range", color=(130, 130, 130))
            return
        active = self.ctx.state["mix_enabled"]
        x_first, x_last = self.slot_x(0), self.slot_x(n - 1)
        dpg.draw_line((x_first, TRACK_Y), (x_last, TRACK_Y), color=(80, 85, 95), thickness=4, parent="mix_range")
        chosen = set(self.ctx.state["mix_layers"])
        for i in range(n):
            x = self.slot_x(i)
            color = (120, 190, 255) if i in chosen and active else (160, 160, 170) if i in chosen else (90, 95, 105)
            dpg.draw_circle((x, TRACK_Y), 3, color=color, fill=color, parent="mix_range")
        span = self.current_range()
        if span:
            lo, hi = span
            fill = (70, 130, 210, 160) if active else (90, 90, 100, 140)
            dpg.draw_rectangle((self.slot_x(lo) - 6, TRACK_Y - 6), (self.slot_x(hi) + 6, TRACK_Y + 6), color=fill,
                               fill=fill, rounding=6, parent="mix_range")
            for index in (lo, hi):
                dpg.draw_circle((self.slot_x(index), TRACK_Y), 8, color=(240, 240, 250), fill=(200, 220, 255),
                                parent="mix_range")
        # One label per resolution, centred over the ws that share it.
        i = 0
        while i < n:
            j = i
            while j + 1 < n and self.resolutions[j + 1] == self.resolutions[i]:
                j += 1
            label = str(self.resolutions[i])
            x = (self.slot_x(i) + self.slot_x(j)) / 2 - 3.5 * len(label)
            dpg.draw_text((x, TRACK_Y + 14), label, size=13, color=(170, 170, 180), parent="mix_range")
            i = j + 1

    def rebuild_boxes(self):
        dpg.delete_item("mix_boxes", children_only=True)
        self.boxes = []
        chosen = set(self.ctx.state["mix_layers"])
        row = None
        for i, res in enumerate(self.resolutions):
            if i % BOXES_PER_ROW == 0:
                row = dpg.add_group(horizontal=True, parent="mix_boxes")
            box = dpg.add_checkbox(label=f"{i:<2}", tag=f"mix_box_{i}", default_value=i in chosen, parent=row,
                                   callback=self.on_box, user_data=i)
            with dpg.tooltip(box):
                dpg.add_text(f"ws[{i}]: style group {res} px (coarse 4-8, middle 16-32, fine 64+)")
            self.boxes.append(box)

    # --- edits -------------------------------------------------------------------------------
    def set_layers(self, layers, coalesce):
        layers = tuple(sorted(set(layers)))
        self.ctx.edit_many({"mix_layers": layers, "mix_enabled": bool(layers)}, coalesce=coalesce)
        self.sync()

    def on_preset(self, sender, value, preset):
        if preset is None:
            self.set_layers((), coalesce=False)  # None: no layers, mixing off
            return
        layers, reason = preset_or_reason(self.resolutions, preset)
        if not layers:  # StyleGAN3 has no 4-8 px layers: say so instead of doing nothing
            self.ctx.set_status(f"{preset.capitalize()}: {reason}", error=True)
            return
        self.set_layers(layers, coalesce=False)

    def on_enable(self, sender, value, user_data=None):
        """Ticked with no layers chosen would change nothing: take the first group the network has."""
        if not value or self.ctx.state["mix_layers"] or not self.resolutions:
            self.ctx.edit("mix_enabled", bool(value), coalesce=False)
            self.sync()
            return
        for preset in PRESETS:
            layers, _ = preset_or_reason(self.resolutions, preset)
            if layers:
                self.set_layers(layers, coalesce=False)
                self.ctx.set_status(f"style mixing: no layers were chosen, so the {preset} ones "
                                    f"(ws {layers[0]}-{layers[-1]}); drag the range or pick a preset")
                return

    def on_box(self, sender, value, index):
        layers = set(self.ctx.state["mix_layers"])
        (layers.add if value else layers.discard)(index)
        self.set_layers(layers, coalesce=False)

    def tick(self):
        """The range slider is drawn by hand, so its mouse handling lives here."""
        down = dpg.is_mouse_button_down(dpg.mvMouseButton_Left)
        if not self.resolutions or not dpg.is_item_visible("mix_range"):
            self.was_down = down
            return
        mx, _ = dpg.get_mouse_pos(local=False)
        x0, _ = dpg.get_item_rect_min("mix_range")
        slot = self.slot_at(mx - x0)
        if down and not self.was_down and dpg.is_item_hovered("mix_range"):
            span = self.current_range()
            if span is None:
                self.drag_handle = 1
                self.anchor = slot
            else:
                lo, hi = span
                self.drag_handle = 0 if abs(slot - lo) < abs(slot - hi) or (slot < lo) else 1
                self.anchor = hi if self.drag_handle == 0 else lo
        if down and self.drag_handle is not None:
            lo, hi = sorted((self.anchor, slot))
            if (lo, hi) != self.current_range() or not self.ctx.state["mix_enabled"]:
                self.set_layers(range(lo, hi + 1), coalesce=True)
        if not down:
            self.drag_handle = None
        self.was_down = down

    def on_model(self, info):
        self.resolutions = list(info.get("ws_resolutions") or [])
        valid = tuple(i for i in self.ctx.state["mix_layers"] if i < len(self.resolutions))
        if valid != self.ctx.state["mix_layers"]:
            self.ctx.state.adjust({"mix_layers": valid})  # adapting to a smaller network: drop ws it does not have
        self.rebuild_boxes()
        self.draw_range()

    def sync(self):
        super().sync()
        chosen = set(self.ctx.state["mix_layers"])
        for i, box in enumerate(self.boxes):
            dpg.set_value(box, i in chosen)
        self.draw_range()
