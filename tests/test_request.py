"""RenderRequest: validation, canonical forms, JSON round trip, seed plane, mix groups."""

import dataclasses
import json
import math

import numpy as np
import pytest

from renderer.request import RenderRequest, mix_indices
from renderer.request.latents import seed_xy_blend


def test_defaults_are_valid_and_hashable():
    request = RenderRequest()
    assert request.seeds == ((0, 1.0),)
    assert hash(request) == hash(RenderRequest())


def test_inputs_are_stored_canonically():
    request = RenderRequest(
        seeds=42,
        w=np.zeros((1, 3, 4), dtype=np.float32),
        mix_layers=[9, 8, 8, 2],
        noise_layer_strength={"b8.conv1": 0.5, "b4.conv1": 2},
    )
    assert request.seeds == ((42, 1.0),)
    assert len(request.w) == 3 and len(request.w[0]) == 4
    assert request.mix_layers == (2, 8, 9)
    assert request.noise_layer_strength == (("b4.conv1", 2.0), ("b8.conv1", 0.5))


def test_json_round_trip_is_exact():
    request = RenderRequest(
        pkl="net.pkl", seeds=[(1, 0.3), (7, 0.7)], truncation_psi=0.7, truncation_cutoff=4,
        mix_seed=5, mix_layers=(4, 5, 6, 7), mix_strength=0.25, noise_mode="random", noise_seed=9,
        noise_layer_strength={"b16.conv0": 0.0}, layer="b16.conv1", channel_mode="grid",
        grid_channels=9, normalize="std", gain_db=-6.5, fft=True, w_offset=[0.1] * 8,
        transform_translate=(0.1, -0.2), transform_rotate=12.5, output_scale=2.0,
    )
    again = RenderRequest.from_json(request.to_json())
    assert again == request
    assert json.loads(request.to_json())["noise_layer_strength"] == {"b16.conv0": 0.0}


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"truncation_psi": math.nan}, "truncation_psi"),
        ({"truncation_psi": 9.0}, "truncation_psi"),
        ({"truncation_psi": "0.7"}, "truncation_psi"),
        ({"z": [0.0, math.inf]}, "z[1]"),
        ({"w": [0.0, 1e300]}, "w[1]"),
        ({"w_offset": [[0.0, math.nan]]}, "w_offset[0][1]"),
        ({"w": [0.0, True]}, "w[1]"),
        ({"w": [[0.0, 1.0], [0.0]]}, "w"),
        ({"seeds": [(-1, 1.0)]}, "seeds[0] seed"),
        ({"seeds": [(1, math.nan)]}, "seeds[0] weight"),
        ({"mix_layers": "coarse,huge"}, "mix_layers"),
        ({"mix_layers": "coarse"}, "mix_layers"),
        ({"mix_layers": [1, -1]}, "mix_layers"),
        ({"mix_layers": [1.5]}, "mix_layers"),
        ({"mix_layers": "0-99999999999"}, "mix_layers"),  # refused before a range of that size is made
        ({"mix_layers": [1024]}, "mix_layers"),
        ({"mix_layers": "7-3"}, "mix_layers"),
        ({"mix_strength": 1.5}, "mix_strength"),
        ({"noise_mode": "loud"}, "noise_mode"),
        ({"noise_layer_strength": {"b4.conv1": math.nan}}, "noise_layer_strength"),
        ({"channel_mode": "rgba"}, "channel_mode"),
        ({"grid_channels": 0}, "grid_channels"),
        ({"fft": 1}, "fft"),
        ({"device": "gpu"}, "device"),
        ({"output_scale": 0.0}, "output_scale"),
        ({"z": [1.0], "w": [1.0]}, "latent source"),
    ],
)
def test_bad_values_name_the_field(changes, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[")):
        RenderRequest(**changes)


def test_replace_revalidates():
    with pytest.raises(ValueError, match="gain_db"):
        dataclasses.replace(RenderRequest(), gain_db=math.nan)


def test_from_json_rejects_unknown_fields_and_bad_text():
    with pytest.raises(ValueError, match="psi: unknown"):
        RenderRequest.from_json('{"psi": 0.5}')
    with pytest.raises(ValueError, match="not valid JSON"):
        RenderRequest.from_json("{seeds")


def test_seed_plane_matches_visualizer_convention():
    assert seed_xy_blend(3.0, 0.0) == ((3, 1.0),)
    blend = dict(seed_xy_blend(0.25, 1.5))
    assert blend == {100: 0.375, 101: 0.125, 200: 0.375, 201: 0.125}
    assert math.isclose(sum(blend.values()), 1.0)
    # negative corners wrap to 32 bits like the visualizer's & 0xffffffff
    assert dict(seed_xy_blend(-1.0, 0.0)) == {2**32 - 1: 1.0}
    assert RenderRequest(seed_xy=(0.25, 1.5)).seed_weights() == seed_xy_blend(0.25, 1.5)


def _ws_resolutions(resolution):
    """StyleGAN2's ws_resolutions: two w indices per block (the torgb w is shared onward)."""
    out = []
    res = 4
    while res <= resolution:
        out += [res, res]
        res *= 2
    return out


@pytest.mark.parametrize(
    "resolution, coarse, middle, fine",
    [
        (256, range(0, 4), range(4, 8), range(8, 14)),
        (512, range(0, 4), range(4, 8), range(8, 16)),
        (1024, range(0, 4), range(4, 8), range(8, 18)),
    ],
)
def test_named_groups_pick_w_indices(resolution, coarse, middle, fine):
    ws_res = _ws_resolutions(resolution)
    assert len(ws_res) == {256: 14, 512: 16, 1024: 18}[resolution]
    assert mix_indices("coarse", ws_res) == list(coarse)
    assert mix_indices("middle", ws_res) == list(middle)
    assert mix_indices("fine", ws_res) == list(fine)
    assert mix_indices("coarse,fine", ws_res) == list(coarse) + list(fine)


def test_ranges_and_indices():
    ws_res = _ws_resolutions(64)
    assert mix_indices("4-7", ws_res) == [4, 5, 6, 7]
    assert mix_indices("0,2,2,9", ws_res) == [0, 2, 9]
    assert mix_indices("", ws_res) == []
    with pytest.raises(ValueError, match="mix_layers"):
        mix_indices("8-12", ws_res)


def test_an_empty_named_group_is_an_error():
    with pytest.raises(ValueError, match="no coarse layers"):
        mix_indices("coarse", [16, 16, 32, 32, 64, 64])


def test_old_text_mix_layers_load_as_indices():
    """Files of earlier versions (PNG metadata, sessions, request files) hold mix_layers as text."""
    old = {**RenderRequest(mix_seed=3).to_dict(), "mix_layers": "0-2, 5"}
    assert RenderRequest.from_dict(old).mix_layers == (0, 1, 2, 5)
    assert RenderRequest.from_dict({**old, "mix_layers": ""}).mixing is False
    # A named group depends on the network: resolved where the caller knows its ws resolutions ...
    grouped = {**old, "mix_layers": "middle,fine"}
    assert RenderRequest.from_dict(grouped, _ws_resolutions(64)).mix_layers == (4, 5, 6, 7, 8, 9)
    # ... and refused with one line naming the field where it does not.
    with pytest.raises(ValueError, match="mix_layers: 'middle' .* needs the network"):
        RenderRequest.from_dict(grouped)
    # What is written now is indices.
    assert json.loads(RenderRequest.from_dict(old).to_json())["mix_layers"] == [0, 1, 2, 5]
