"""The renderer's block cache: a run of edits gives exactly a fresh Renderer's frames; previews are skipped
when only fine layers change; a cancelled render leaves the cache sound."""

import dataclasses

import numpy as np
import pytest

from renderer.request import RenderRequest
from renderer_standin import nudged_stylegan2, renderer_for


@pytest.fixture(scope="module")
def fast_sg2():
    """The 64 px StyleGAN2 on the fast path, as load_generator gives it."""
    return nudged_stylegan2(seed=5).set_reference(False)


def block_cache(renderer):
    (cache,) = renderer._block_caches.values()
    return cache


def assert_same_as_fresh(G, frame, request):
    fresh = renderer_for(G).render(request)
    assert frame.error is None and fresh.error is None, (frame.error, fresh.error)
    assert np.array_equal(frame.image, fresh.image), request
    assert frame.layers == fresh.layers


def test_a_run_of_edits_equals_fresh_renders(fast_sg2, net_file):
    base = RenderRequest(pkl=net_file, seeds=1, truncation_psi=0.7)
    mix = dataclasses.replace(base, mix_seed=2, mix_layers="8-9")
    steps = [
        base,
        mix,  # fine range: enters at the last block
        dataclasses.replace(mix, mix_layers="7-9"),  # a drag of the low handle, one w at a time
        dataclasses.replace(mix, mix_layers="6-9"),
        dataclasses.replace(mix, mix_layers="3-9"),
        dataclasses.replace(mix, mix_layers="5-9", mix_strength=0.5),
        dataclasses.replace(mix, mix_layers="5-9", noise_strength=0.4),
        dataclasses.replace(mix, mix_layers="5-9", noise_layer_strength=(("b64.conv1", 2.0),)),
        dataclasses.replace(mix, mix_layers="5-9", noise_layer_strength=(("b32.conv0", 0.0),)),
        dataclasses.replace(mix, layer="b16.conv1", normalize="std"),  # a capture between full frames
        dataclasses.replace(mix, mix_layers="5-9", noise_layer_strength=(("b32.conv0", 0.0),)),  # unchanged
        dataclasses.replace(mix, seeds=3, mix_layers="5-9"),  # new seed: everything changes
        dataclasses.replace(mix, seeds=3, mix_layers="5-9", noise_mode="random", noise_seed=4),
        dataclasses.replace(mix, seeds=3, mix_layers="8-9", noise_mode="random", noise_seed=4),
        dataclasses.replace(mix, seeds=3, mix_layers="8-9", noise_mode="random", noise_seed=5),
        dataclasses.replace(mix, seeds=3, mix_layers="8-9", noise_mode="none"),
        base,
    ]
    renderer = renderer_for(fast_sg2)
    reused = 0
    for request in steps:
        frame = renderer.render(request)
        assert_same_as_fresh(fast_sg2, frame, request)
        if request.layer is None:
            cache = block_cache(renderer)
            reused += cache.blocks_run + cache.layers_run < len(fast_sg2.synthesis.block_resolutions)
    assert reused >= 8  # the run above really re-used blocks, not just rendered everything again


def test_fine_changes_skip_the_preview_coarse_ones_do_not(fast_sg2, net_file):
    renderer = renderer_for(fast_sg2)
    base = RenderRequest(pkl=net_file, seeds=1, mix_seed=2, mix_layers="8-9")
    assert not renderer.render(base).preview

    fine = dataclasses.replace(base, mix_layers="7-9")  # w 7 enters at b32.conv1 (and b32's torgb)
    frame = renderer.render(fine, preview_resolution=16)
    assert not frame.preview  # the cached re-render from b32 is the quick frame
    assert_same_as_fresh(fast_sg2, frame, fine)

    unchanged = renderer.render(fine, preview_resolution=16)
    assert not unchanged.preview and np.array_equal(unchanged.image, frame.image)

    coarse = dataclasses.replace(base, mix_layers="1-9")  # enters at b8, below the preview's b16
    preview = renderer.render(coarse, preview_resolution=16)
    assert preview.preview and preview.image.shape == frame.image.shape
    assert_same_as_fresh(fast_sg2, renderer.render(coarse), coarse)


def test_a_cancelled_render_leaves_the_cache_sound(fast_sg2, net_file):
    renderer = renderer_for(fast_sg2)
    first = RenderRequest(pkl=net_file, seeds=1)
    renderer.render(first)
    calls = []

    def stop_at_third_block():
        calls.append(1)
        return len(calls) >= 3

    second = RenderRequest(pkl=net_file, seeds=2)
    assert renderer.render(second, should_stop=stop_at_third_block).cancelled
    for request in (first, second, RenderRequest(pkl=net_file, seeds=1, mix_seed=2, mix_layers="8-9")):
        assert_same_as_fresh(fast_sg2, renderer.render(request), request)


def test_a_second_thread_on_the_same_renderer_renders_uncached(fast_sg2, net_file):
    renderer = renderer_for(fast_sg2)
    request = RenderRequest(pkl=net_file, seeds=1)
    renderer.render(request)
    cache = block_cache(renderer)
    before = dict(cache.entries)
    other = RenderRequest(pkl=net_file, seeds=9)
    with renderer._block_cache_lock:  # as if another thread's render held the cache
        frame = renderer.render(other)
    assert cache.entries == before  # untouched
    assert_same_as_fresh(fast_sg2, frame, other)


def test_an_evicted_network_drops_its_cache(fast_sg2, tmp_path):
    renderer = renderer_for(fast_sg2)
    paths = []
    for i in range(3):  # MAX_NETWORKS is 2: the first is evicted
        path = tmp_path / f"net{i}.pkl"
        path.write_bytes(b"in-process network")
        paths.append(str(path))
        assert renderer.render(RenderRequest(pkl=str(path), seeds=1)).error is None
    assert set(renderer._block_caches) == set(renderer._networks)
    assert len(renderer._block_caches) == 2
