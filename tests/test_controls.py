"""One declaration per control: every RenderRequest field's metadata feeds the validator, the window's
state and widget, and the CLI; adding a control is one declaration plus at most one widget line."""

import dataclasses
import json
import re

import pytest

import run_app
from app.state import PARAM_BY_NAME, PARAMS, REQUEST_NAMES, ExplorerState
from renderer.request import RenderRequest, field_default, request_controls
from renderer.request.fields import WIDGETS, Control


def parse(*argv):
    return run_app.build_parser().parse_args(["frame", *argv, "--out", "x.png"])


def cli_help():
    return run_app.build_parser()._subparsers._group_actions[0].choices["frame"].format_help()


def test_every_field_is_declared_completely():
    for field in dataclasses.fields(RenderRequest):
        spec = field.metadata.get("control")
        assert isinstance(spec, Control), f"{field.name}: declare it with control(...)"
        assert spec.widget in WIDGETS + (None,)
        assert getattr(RenderRequest(), field.name) == spec.validate(field.name, field_default(field.name))
        if spec.widget or spec.flag:
            assert spec.label or spec.tooltip, f"{field.name}: a shown control needs words"
        if spec.choices:
            assert field_default(field.name) in spec.choices
        if spec.soft:
            assert spec.low <= spec.soft[0] < spec.soft[1] <= spec.high, f"{field.name}: soft range inside the hard one"


def test_psi_has_one_range_in_the_validator_the_slider_and_the_cli():
    spec = request_controls()["truncation_psi"]
    # the validator: the hard range
    RenderRequest(truncation_psi=spec.high)
    with pytest.raises(ValueError, match=re.escape(f"outside [{spec.low}, {spec.high}]")):
        RenderRequest(truncation_psi=spec.high + 0.5)
    # the window's state value: the slider's soft range, the label, the default
    param = PARAM_BY_NAME["truncation_psi"]
    assert (param.low, param.high) == spec.soft and param.label == spec.label and param.default == 1.0
    assert param.widget == "slider"
    # the CLI: the flag, its help made of the same words and range
    help_text = " ".join(cli_help().split())
    assert f"{spec.flag} X {spec.label}: {spec.tooltip}" in help_text
    assert f"({spec.low:g}..{spec.high:g}, default 1)" in help_text
    assert run_app.request_from_args(parse(spec.flag, "0.5")).truncation_psi == 0.5


def test_the_cli_has_a_flag_for_every_flagged_field():
    given = {"real": ("0.5", 0.5), "integer": ("3", 3), "boolean": (None, True), "layer_name": ("b16.conv1", "b16.conv1"),
             "w_indices": ("1-2", (1, 2))}
    for name, spec in request_controls().items():
        if not spec.flag:
            continue
        text, expected = (spec.choices[-1], spec.choices[-1]) if spec.choices else given[spec.check.__name__]
        argv = [spec.flag] + ([] if text is None else [text])
        if name in ("mix_seed", "mix_layers"):  # a mix needs both
            argv += ["--mix-layers", "1-2"] if name == "mix_seed" else ["--mix-seed", "3"]
        request = run_app.request_from_args(parse(*argv))
        assert getattr(request, name) == expected, name


def test_the_state_holds_every_field_with_a_widget_under_its_name():
    shown = [name for name, spec in request_controls().items() if spec.widget]
    assert list(REQUEST_NAMES) == shown
    names = [p.name for p in PARAMS]
    assert len(names) == len(set(names))
    # every request-shaped value reaches the request unchanged under its own name
    state = ExplorerState()
    edits = {"truncation_psi": 0.25, "noise_strength": 2.0, "gain_db": 3.0, "transform_rotate": 12.0,
             "mix_strength": 0.5, "noise_seed": 7, "grid_channels": 9, "fft": True, "noise_mode": "random"}
    state.update(edits)
    request = state.to_request()
    assert {k: getattr(request, k) for k in edits} == edits


class StandInContext:
    """What app/controls.py needs of a panel's context (PanelContext): the state, an edit door, the reset handlers."""

    def __init__(self, dpg):
        self.state = ExplorerState()
        self.text_inputs = []
        with dpg.item_handler_registry() as self.reset_handlers:
            pass

    def edit(self, name, value, coalesce=True):
        self.state.set(name, value, coalesce=coalesce)


def test_every_declared_widget_draws_from_its_declaration_and_resets():
    """The widget line is all a panel writes: range, choices, label and reset come from the declaration."""
    import dearpygui.dearpygui as dpg

    from app import controls
    from app.panels.base import Panel

    dpg.create_context()
    try:
        panel = Panel(StandInContext(dpg))
        drawn = [p for p in PARAMS if p.widget not in (None, "custom")]
        assert {"truncation_psi", "noise_mode", "noise_seed", "fft", "channel", "mix_seed"} <= {p.name for p in drawn}
        with dpg.window():
            tags = {p.name: panel.control(p.name, tag=p.name) for p in drawn}
        for param in drawn:
            config = dpg.get_item_configuration(tags[param.name])
            if param.widget == "slider":
                assert (config["min_value"], config["max_value"]) == (param.low, param.high), param.name
            if param.widget == "radio":
                assert tuple(config["items"]) == param.choices, param.name
            if param.widget in ("slider", "checkbox", "int"):
                assert config["label"] == param.label, param.name
            assert dpg.get_value(tags[param.name]) == param.default or param.default is None, param.name
        # psi's slider: the declared soft range; right-click reset: the declared default
        spec = request_controls()["truncation_psi"]
        assert tuple(dpg.get_item_configuration(tags["truncation_psi"])[k] for k in ("min_value", "max_value")) == spec.soft
        panel.on_widget("truncation_psi", 0.7)
        assert panel.ctx.state["truncation_psi"] == 0.7  # typed_float: what the person saw, not float32's 0.69999
        assert controls.reset(panel, "truncation_psi") and panel.ctx.state["truncation_psi"] == field_default("truncation_psi")
        with pytest.raises(ValueError, match="draws itself"):
            controls.add(panel, "mix_layers")
    finally:
        dpg.destroy_context()


def test_an_old_request_file_naming_a_group_is_one_clean_line_headless(tmp_path, capsys):
    """Headless readers parse a file before opening its network: a named group there is refused with
    one line (the window resolves it with the open network: test_gui_state)."""
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**RenderRequest(seeds=1, mix_seed=2).to_dict(), "mix_layers": "coarse"}))
    code = run_app.main(["frame", "--request", str(old), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code != 0 and "mix_layers: 'coarse'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
    old.write_text(json.dumps({**RenderRequest(seeds=1, mix_seed=2).to_dict(), "mix_layers": "0-1,3"}))
    assert run_app.request_from_args(parse("--request", str(old))).mix_layers == (0, 1, 3)
