"""StyleGAN3 transform panel: translate, rotate and scale the input grid (shown only for StyleGAN3 models)."""

import dearpygui.dearpygui as dpg

from app.panels.base import Panel

TRANSFORM_NAMES = ("translate_x", "translate_y", "transform_rotate", "transform_scale")


class TransformPanel(Panel):
    title = "StyleGAN3 transform"

    def build(self):
        self.control("translate_x", tag="translate_x", width=-130)
        self.control("translate_y", tag="translate_y", width=-130)
        self.control("transform_rotate", tag="transform_rotate", width=-130, fmt="%.1f deg")
        self.control("transform_scale", tag="transform_scale", width=-130, fmt="%.2fx")
        dpg.add_button(label="Reset transform", tag="transform_reset", callback=self.on_reset)

    def on_reset(self):
        from app.state import PARAM_BY_NAME

        self.ctx.edit_many({name: PARAM_BY_NAME[name].default for name in TRANSFORM_NAMES}, coalesce=False)
        self.sync()

    def visible_for(self, info):
        return str(info.get("architecture", "")).startswith("stylegan3")
