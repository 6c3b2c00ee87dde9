"""Latent panel: the seed (steps, random, drag on the image), blends of several seeds, animation."""

import random

import dearpygui.dearpygui as dpg

from app.controls import typed_float
from app.panels.base import Panel
from renderer.request.latents import SEED_STEP_Y

MAX_BLEND_ROWS = 8
SEED_HINT = "Drag on the image to move through seed space."


def combined_seed(x, y):
    return int(round(x)) + int(round(y)) * SEED_STEP_Y


class LatentPanel(Panel):
    title = "Latent"

    def build(self):
        with dpg.group(horizontal=True):
            dpg.add_input_int(label="Seed", tag="seed", width=170, min_value=0, min_clamped=True,
                              default_value=combined_seed(self.ctx.state["seed_x"], self.ctx.state["seed_y"]),
                              callback=self.on_seed)
            self.ctx.text_inputs.append("seed")
            dpg.add_button(label="Random", tag="seed_random", callback=self.on_random)
        with dpg.group(horizontal=True, tag="class_row", show=False):
            dpg.add_checkbox(label="Class", tag="class_on", callback=self.on_class)
            dpg.add_input_int(tag="class_idx", width=150, min_value=0, min_clamped=True, callback=self.on_class)
            self.ctx.text_inputs.append("class_idx")
            dpg.add_text("", tag="class_source", color=(150, 150, 150))
        dpg.add_text("", tag="seed_position", color=(150, 150, 150), wrap=390)
        dpg.add_text(SEED_HINT, tag="seed_hint", color=(120, 120, 120))

        dpg.add_spacer(height=2)
        dpg.add_text("Blend with other seeds")
        with dpg.group(tag="blend_rows"):
            pass
        with dpg.group(horizontal=True):
            dpg.add_button(label="Add seed", tag="blend_add", callback=self.on_add_blend)
            dpg.add_text("Blend in", color=(150, 150, 150))
            self.control("blend_space", tag="blend_space")

        dpg.add_spacer(height=2)
        with dpg.group(horizontal=True):
            self.control("animate", tag="animate")
            self.control("animate_speed", fmt="%.2f seeds/s", tag="animate_speed", width=-60)
        self.rebuild_blend_rows()
        self.show_position()

    def on_seed(self, sender, value):
        self.ctx.edit_many({"seed_x": float(max(0, value)), "seed_y": 0.0}, coalesce=False)
        self.show_position()

    def on_class(self, sender=None, value=None):
        """Conditional networks: a fixed class, or (off) the class NVIDIA's visualizer draws from the seed."""
        on = dpg.get_value("class_on")
        self.ctx.edit("class_idx", int(dpg.get_value("class_idx")) if on else None, coalesce=False)
        self.show_class()

    def show_class(self):
        """Unticked, the field shows (greyed) the class the image uses: the one picked from the seed."""
        from app import bridge

        used = bridge.class_in_use(self.ctx.state, self.ctx.model_info or {})
        if used is None:
            return
        value, how = used
        dpg.set_value("class_idx", value)
        dpg.configure_item("class_idx", enabled=self.ctx.state["class_idx"] is not None)
        dpg.set_value("class_source", "" if how == "chosen" else how)
        self.ctx.note("class_shown", value=value, how=how, enabled=self.ctx.state["class_idx"] is not None)

    def on_model(self, info):
        c_dim = int(info.get("c_dim") or 0)
        dpg.configure_item("class_row", show=c_dim > 0)
        dpg.configure_item("class_idx", max_value=max(0, c_dim - 1), max_clamped=True)
        if c_dim == 0 and self.ctx.state["class_idx"] is not None:
            self.ctx.state.adjust({"class_idx": None})  # adapting to the network: an unconditional one takes no label
        self.show_class()

    def layout_state(self):
        """What moves this panel's controls: the blend rows above the animation checkbox."""
        return len(self.shown_rows)

    def on_random(self):
        self.ctx.edit_many({"seed_x": float(random.randrange(0, 1 << 24)), "seed_y": 0.0}, coalesce=False)
        self.sync()

    def show_position(self):
        x, y = self.ctx.state["seed_x"], self.ctx.state["seed_y"]
        pairs = self.ctx.state.seeds()
        text = f"x {x:.2f}  y {y:.2f}"
        if len(pairs) > 1:  # at most four pairs: the line stays in the panel
            text += "  ·  " + ", ".join(f"{s}:{w:.2f}" for s, w in pairs[:4]) + (" …" if len(pairs) > 4 else "")
        dpg.set_value("seed_position", text)
        self.show_class()
        # One line either way (the same height: the controls below stay where they are).
        latent = self.ctx.state["latent"]
        dpg.set_value("seed_hint", SEED_HINT if latent is None else f"Not used now: the {latent[0]} in Vectors is.")

    # --- blend rows: (seed, weight) pairs beyond the main seed -----------------------------------
    def on_add_blend(self):
        rows = list(self.ctx.state["blend_seeds"])
        if len(rows) >= MAX_BLEND_ROWS:
            self.ctx.set_status(f"at most {MAX_BLEND_ROWS} extra seeds")
            return
        rows.append((combined_seed(self.ctx.state["seed_x"], self.ctx.state["seed_y"]) + len(rows) + 1, 0.5))
        self.ctx.edit("blend_seeds", rows, coalesce=False)
        self.rebuild_blend_rows()
        self.show_position()

    def on_blend_edit(self, sender, value, index_and_field):
        index, field = index_and_field
        rows = [list(r) for r in self.ctx.state["blend_seeds"]]
        if index >= len(rows):
            return
        if field == "remove":
            del rows[index]
        elif field == "seed":
            rows[index][0] = max(0, int(value))
        else:
            rows[index][1] = typed_float(value)
        self.ctx.edit("blend_seeds", rows, coalesce=field == "weight")
        if field == "remove":
            self.rebuild_blend_rows()
        else:
            self.shown_rows = self.ctx.state["blend_seeds"]  # the widgets already show this edit
        self.show_position()

    def rebuild_blend_rows(self):
        self.shown_rows = self.ctx.state["blend_seeds"]
        for child in dpg.get_item_children("blend_rows", 1) or []:
            if child in self.ctx.text_inputs:
                self.ctx.text_inputs.remove(child)
            dpg.delete_item(child)
        self.ctx.text_inputs[:] = [t for t in self.ctx.text_inputs if dpg.does_item_exist(t)]
        for index, (seed, weight) in enumerate(self.ctx.state["blend_seeds"]):
            with dpg.group(horizontal=True, parent="blend_rows"):
                seed_tag = dpg.add_input_int(label="", width=120, default_value=int(seed), min_value=0,
                                             min_clamped=True, callback=self.on_blend_edit,
                                             user_data=(index, "seed"))
                self.ctx.text_inputs.append(seed_tag)
                dpg.add_slider_float(label="", width=170, default_value=float(weight), min_value=0.0,
                                     max_value=1.0, format="weight %.2f", callback=self.on_blend_edit,
                                     user_data=(index, "weight"))
                dpg.add_button(label="x", callback=self.on_blend_edit, user_data=(index, "remove"))

    def sync(self):
        super().sync()
        dpg.set_value("seed", combined_seed(self.ctx.state["seed_x"], self.ctx.state["seed_y"]))
        dpg.set_value("class_on", self.ctx.state["class_idx"] is not None)
        if self.shown_rows != self.ctx.state["blend_seeds"]:
            self.rebuild_blend_rows()
        self.show_position()
