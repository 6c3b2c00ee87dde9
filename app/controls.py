"""Controls: a state value's widget drawn from its declaration (label, range, choices, tooltip, widget
kind; for request fields the metadata in renderer/request/), bound to the value, reset by right-click."""

import dearpygui.dearpygui as dpg
import numpy as np

from app.state import PARAM_BY_NAME

INT32_MAX = 2**31 - 1  # dearpygui's integer widgets hold int32


def add(panel, name, fmt=None, **kwargs):
    """Draw the widget `name` is declared with, inside the current container; returns its tag.
    kwargs go to dearpygui (tag, width, ...); fmt is a slider's display format."""
    param = PARAM_BY_NAME[name]
    value = panel.ctx.state[name]
    integral = isinstance(param.default, int) and not isinstance(param.default, bool)
    if param.widget == "slider" and integral:
        tag = dpg.add_slider_int(label=param.label, default_value=int(value), min_value=int(param.low),
                                 max_value=int(param.high), callback=panel.on_widget, **kwargs)
        return bind(panel, tag, name)
    if param.widget == "slider":
        tag = dpg.add_slider_float(label=param.label, default_value=value, min_value=param.low, max_value=param.high,
                                   format=fmt or "%.3f", callback=panel.on_widget, **kwargs)
        return bind(panel, tag, name, from_widget=typed_float)
    if param.widget == "int":
        limits = {"min_value": int(param.low), "min_clamped": True} if param.low is not None else {}
        if param.high is not None and param.high <= INT32_MAX:
            limits.update(max_value=int(param.high), max_clamped=True)
        tag = dpg.add_input_int(label=param.label, default_value=int(value or 0), step=1, callback=panel.on_widget,
                                on_enter=False, **limits, **kwargs)
        panel.ctx.text_inputs.append(tag)
        return bind(panel, tag, name)
    if param.widget == "radio":
        tag = dpg.add_radio_button(items=list(param.choices), default_value=value, horizontal=True,
                                   callback=panel.on_widget, **kwargs)
        return bind(panel, tag, name)
    if param.widget == "checkbox":
        tag = dpg.add_checkbox(label=param.label, default_value=bool(value), callback=panel.on_widget, **kwargs)
        return bind(panel, tag, name)
    raise ValueError(f"{name}: declared with widget {param.widget!r}, which its panel draws itself")


def bind(panel, tag, name, to_widget=lambda v: v, from_widget=lambda v: v):
    """Tie a widget to a state value: its edits go through the panel, sync() and right-click reset find it."""
    panel.bound[tag] = (name, to_widget, from_widget)
    dpg.bind_item_handler_registry(tag, panel.ctx.reset_handlers)
    param = PARAM_BY_NAME[name]
    if param.tooltip:
        with dpg.tooltip(tag):
            dpg.add_text(param.tooltip)
    return tag


def reset(panel, tag):
    """Right-click on a bound widget: its value back to the declared default (one undo step)."""
    if tag not in panel.bound:
        return False
    name = panel.bound[tag][0]
    panel.ctx.edit(name, PARAM_BY_NAME[name].default, coalesce=False)
    return True


def typed_float(value):
    """A float slider's value as the person typed or saw it: dearpygui keeps float32, so a typed
    0.7 arrives as 0.699999988; the shortest float32 text ('0.7') is what they meant."""
    return float(str(np.float32(value)))
