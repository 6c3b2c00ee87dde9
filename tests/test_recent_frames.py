"""Recent frames: going back to inputs rendered lately shows their frame again without a pass; any
input that decides the image makes a new one; the byte budget drops the least recently used."""

import dataclasses

import numpy as np
import pytest
import torch

from renderer.recent_frames import RecentFrames, frame_key
from renderer.request import RenderRequest
from renderer_standin import nudged_stylegan2, renderer_for


@pytest.fixture(scope="module")
def fast_sg2():
    return nudged_stylegan2(seed=7).set_reference(False)


def counting_passes(monkeypatch):
    """Counts the renderer's synthesis passes."""
    from renderer import passes as passes_module

    passes = []
    synthesize = passes_module.synthesize

    def counted(G, ws, **kwargs):
        passes.append(1)
        return synthesize(G, ws, **kwargs)

    monkeypatch.setattr(passes_module, "synthesize", counted)
    return passes


def test_going_back_recalls_the_frame_without_a_pass(fast_sg2, net_file, monkeypatch):
    renderer = renderer_for(fast_sg2)
    passes = counting_passes(monkeypatch)
    base = RenderRequest(pkl=net_file, seeds=1, truncation_psi=0.7)
    mixed = dataclasses.replace(base, mix_seed=2, mix_layers=(8, 9))  # the fine ws
    first = renderer.render(base)
    renderer.render(mixed)
    assert len(passes) == 2 and not first.recalled
    again = renderer.render(dataclasses.replace(base, mix_seed=2, mix_layers=""))  # mixing switched off
    assert again.recalled and len(passes) == 2
    assert np.array_equal(again.image, first.image) and again.layers == first.layers and again.error is None
    # What is made of the image afterwards still follows the request.
    half = renderer.render(dataclasses.replace(base, output_scale=0.5))
    assert half.recalled and half.image.shape == (32, 32, 3)
    fresh = renderer_for(fast_sg2).render(dataclasses.replace(base, output_scale=0.5))
    np.testing.assert_array_equal(half.image, fresh.image)


def test_every_input_that_decides_the_image_makes_a_new_frame(fast_sg2, net_file):
    base = RenderRequest(pkl=net_file, seeds=1, truncation_psi=0.7)
    variants = [
        base,
        dataclasses.replace(base, truncation_psi=0.6),
        dataclasses.replace(base, seeds=((1, 0.5), (2, 0.5))),
        dataclasses.replace(base, mix_seed=2, mix_layers="8-9"),
        dataclasses.replace(base, mix_seed=2, mix_layers="8-9", mix_strength=0.5),
        dataclasses.replace(base, noise_mode="none"),
        dataclasses.replace(base, noise_mode="random", noise_seed=1),
        dataclasses.replace(base, noise_mode="random", noise_seed=2),
        dataclasses.replace(base, noise_strength=0.5),
        dataclasses.replace(base, noise_layer_strength=(("b64.conv1", 2.0),)),
        dataclasses.replace(base, noise_layer_strength=(("b64.conv1", 2.5),)),
    ]
    renderer = renderer_for(fast_sg2)
    frames = [renderer.render(request) for request in variants]
    assert not any(frame.recalled for frame in frames)
    images = [frame.image.tobytes() for frame in frames]
    assert len(set(images)) == len(images)
    for request, frame in zip(variants, frames):  # all of them again, in the same order: all recalled
        again = renderer.render(request)
        assert again.recalled and np.array_equal(again.image, frame.image), request
        np.testing.assert_array_equal(again.image, renderer_for(fast_sg2).render(request).image)


def test_the_layer_path_and_the_stylegan3_transform_decide_too(net_file):
    G = nudged_stylegan2(seed=8).set_reference(False)
    renderer = renderer_for(G)
    request = RenderRequest(pkl=net_file, seeds=3)
    renderer.render(request)
    G.set_reference(True)  # the plain path (what tests compare against) is a new frame, not the fast one
    assert not renderer.render(request).recalled
    assert renderer.render(request).recalled

    from models import stylegan3

    torch.manual_seed(2)
    sg3 = stylegan3.build(dict(stylegan3.train_defaults("t", 64), channel_base=2048, channel_max=32)).eval()
    renderer = renderer_for(sg3)
    renderer.render(request)
    moved = renderer.render(dataclasses.replace(request, transform_translate=(0.25, 0.0)))
    assert not moved.recalled
    assert renderer.render(request).recalled
    assert not renderer.render(dataclasses.replace(request, transform_rotate=5.0)).recalled


def test_a_recalled_frame_needs_no_preview(fast_sg2, net_file):
    renderer = renderer_for(fast_sg2)
    request = RenderRequest(pkl=net_file, seeds=4)
    renderer.render(request)
    renderer.render(dataclasses.replace(request, seeds=5))
    assert renderer.render(dataclasses.replace(request, seeds=6), preview_resolution=16).preview  # a new seed
    frame = renderer.render(request, preview_resolution=16)
    assert frame.recalled and not frame.preview and frame.image.shape == (64, 64, 3)


def test_no_budget_keeps_nothing(fast_sg2, net_file):
    renderer = renderer_for(fast_sg2, recent_frames_bytes=0, recent_captures_bytes=0)
    request = RenderRequest(pkl=net_file, seeds=4)
    # (A ToRGB layer: the features and conv0 outputs of the shown pass come from the block cache.)
    for shown in (request, dataclasses.replace(request, layer="b32.torgb")):
        renderer.render(shown)
        assert not renderer.render(shown).recalled


def test_other_views_of_a_captured_layer_need_no_pass(fast_sg2, net_file, monkeypatch):
    renderer = renderer_for(fast_sg2)
    view = RenderRequest(pkl=net_file, seeds=4, layer="b32.conv1", channel_mode="one", channel=0)
    renderer.render(view)
    others = [
        dataclasses.replace(view, channel=3),
        dataclasses.replace(view, channel_mode="grid", normalize="std"),
        dataclasses.replace(view, channel_mode="rgb", gain_db=6.0),
        dataclasses.replace(view, fft=True),
    ]
    expected = [renderer_for(fast_sg2).render(other).image for other in others]  # fresh renderers' passes
    passes = counting_passes(monkeypatch)
    for other, image in zip(others, expected):
        frame = renderer.render(other)
        assert frame.recalled and frame.error is None, other
        np.testing.assert_array_equal(frame.image, image)
    assert not passes
    # Anything that decides the layer's values, or a layer after it (the capture stopped at b32): a pass.
    for changed in (dataclasses.replace(view, layer="b64.conv1"), dataclasses.replace(view, truncation_psi=0.5),
                    dataclasses.replace(view, noise_mode="none")):
        assert not renderer.render(changed).recalled, changed
    assert len(passes) == 3


def test_budget_drops_the_least_recently_used():
    frames = RecentFrames(budget=3 * 4 * 16)  # three 4x4 single-channel float32 images
    images = {name: torch.full((1, 1, 4, 4), float(i)) for i, name in enumerate("abcd")}
    for name in "abc":
        frames.put(name, images[name])
    images["a"].add_(10)  # a copy was kept: what the caller does with its tensor afterwards changes nothing
    assert torch.equal(frames.get("a"), torch.zeros(1, 1, 4, 4))  # now the most recent
    frames.put("d", images["d"])
    assert frames.get("b") is None and len(frames) == 3 and frames.nbytes() == 3 * 64
    assert all(torch.equal(frames.get(name), images[name]) for name in "cd")
    frames.put("big", torch.zeros(1, 1, 8, 8))  # larger than the whole budget: not kept, nothing dropped
    assert frames.get("big") is None and len(frames) == 3
    frames.put(None, images["a"])  # not reproducible: never kept
    assert len(frames) == 3
    # Layer captures keep an oversized one alone (a StyleGAN3 1024 px layer outgrows the budget),
    # until the next one needs the room.
    captures = RecentFrames(budget=3 * 4 * 16, keep_oversized=True)
    captures.put("a", images["a"])
    captures.put("big", torch.ones(1, 1, 8, 8))
    assert torch.equal(captures.get("big"), torch.ones(1, 1, 8, 8)) and len(captures) == 1
    captures.put("b", images["b"])
    assert captures.get("big") is None and len(captures) == 1 and captures.nbytes() == 64
    nothing = RecentFrames(budget=0, keep_oversized=True)  # a budget of 0 (exports) keeps nothing
    nothing.put("a", images["a"])
    assert len(nothing) == 0 and nothing.get("a") is None


def test_unseeded_random_noise_has_no_key(fast_sg2):
    ws = torch.zeros(1, fast_sg2.num_ws, fast_sg2.w_dim)
    assert frame_key("net", fast_sg2, ws, {"noise_mode": "random"}) is None
    seeded = {"noise_mode": "random", "noise_generator": torch.Generator().manual_seed(3)}
    assert frame_key("net", fast_sg2, ws, seeded) is not None
    # -0.0 and 0.0 are different inputs (they can round differently downstream)
    const = {"noise_mode": "const"}
    assert frame_key("net", fast_sg2, ws, const) != frame_key("net", fast_sg2, -ws, const)
