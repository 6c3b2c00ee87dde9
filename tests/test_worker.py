"""RenderWorker: latest wins, stale renders stop early, errors come back as frames, clean close."""

import threading
import time

import pytest

from renderer.renderer import Renderer
from renderer.request import RenderRequest
from renderer.scheduler import Hand
from renderer.worker import RenderWorker
from renderer_standin import standin_loader


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "standin.pkl"
    path.write_bytes(b"stand-in; the loader ignores the contents")
    return str(path)


def make_worker(block_delay=0.0, resolution=32, **worker_kwargs):
    loader = standin_loader(block_delay=block_delay, resolution=resolution)
    frames = []
    worker = RenderWorker(Renderer("cpu", load=loader), num_threads=0, on_frame=frames.append, **worker_kwargs)
    return worker, loader, frames


def test_burst_renders_few_frames_and_shows_the_last(net_file):
    worker, _, frames = make_worker(block_delay=0.01)
    with worker:
        requests = [RenderRequest(pkl=net_file, seeds=seed) for seed in range(50)]
        for request in requests:
            worker.submit(request)
        assert worker.wait_idle(timeout=30)
        assert worker.latest().request == requests[-1]
        assert worker.latest().image is not None
    assert len(frames) < 10
    assert frames[-1].request == requests[-1]


def test_stale_render_stops_at_the_next_block(net_file):
    worker, loader, frames = make_worker(block_delay=0.01, resolution=256)  # blocks b4 ... b256
    reached, submitted = threading.Event(), threading.Event()

    def hold_first_pass(*_):
        if not reached.is_set():  # the first render waits inside b16 until the new submit landed
            reached.set()
            submitted.wait(10)

    with worker:
        first = RenderRequest(pkl=net_file, seeds=1)
        worker.renderer.load(first)  # build the network now, to hook it
        synthesis = loader.built[0].synthesis
        synthesis.b16.register_forward_pre_hook(hold_first_pass)
        worker.submit(first)
        assert reached.wait(timeout=10)
        second = RenderRequest(pkl=net_file, seeds=2)
        worker.submit(second)
        submitted.set()
        assert worker.busy  # submit returned while rendering goes on: it did not wait for it
        assert worker.wait_idle(timeout=30)
    assert [f.request for f in frames] == [second]
    # first: b4, b8, b16, then stopped before b32; second: all 7 blocks
    assert synthesis.blocks_run == 3 + 7


def test_failing_request_leaves_the_worker_alive(net_file, tmp_path):
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(b"x")
    worker, _, frames = make_worker()
    with worker:
        worker.submit(RenderRequest(pkl=str(broken)))
        assert worker.wait_idle(timeout=30)
        assert "not a network file" in worker.latest().error
        assert worker.latest().image is None
        worker.submit(RenderRequest(pkl=net_file, seeds=3))
        assert worker.wait_idle(timeout=30)
        assert worker.latest().error is None and worker.latest().image is not None


def test_an_exception_inside_render_comes_back_as_a_frame(net_file):
    worker, _, _ = make_worker()

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    with worker:
        worker.renderer.render = explode
        worker.submit(RenderRequest(pkl=net_file))
        assert worker.wait_idle(timeout=30)
        assert "boom" in worker.latest().error


def test_preview_comes_first_then_the_full_frame(net_file):
    worker, _, frames = make_worker(preview=True, preview_resolution=8)
    with worker:
        request = RenderRequest(pkl=net_file, seeds=5)
        worker.submit(request)
        assert worker.wait_idle(timeout=30)
    assert [f.preview for f in frames] == [True, False]
    assert all(f.request == request for f in frames)
    assert frames[0].image.shape == frames[1].image.shape == (32, 32, 3)
    assert (frames[0].image != frames[1].image).any()


def test_resubmitting_the_shown_request_renders_nothing(net_file):
    worker, _, frames = make_worker()
    with worker:
        request = RenderRequest(pkl=net_file, seeds=5)
        worker.submit(request)
        assert worker.wait_idle(timeout=30)
        worker.submit(request)
        assert worker.wait_idle(timeout=30)
    assert len(frames) == 1


def test_close_stops_a_render_in_flight(net_file):
    worker, _, frames = make_worker(block_delay=0.5, resolution=1024)
    worker.submit(RenderRequest(pkl=net_file))
    worker.close(timeout=10)
    assert not worker._thread.is_alive()
    assert frames == []
    worker.submit(RenderRequest(pkl=net_file))  # after close: ignored, no error


def test_a_drag_shows_previews_while_requests_keep_coming(net_file):
    # A drag sends a request every few tens of ms, more often than a preview takes on a big
    # network. Each preview must still reach the screen: cancelled by the next request, none
    # would, and the picture would freeze until the hand stops.
    worker, _, frames = make_worker(block_delay=0.03, resolution=256, preview=True, preview_resolution=32)
    with worker:  # a preview runs b4..b32: 4 blocks, ~0.12 s; a full frame 7 blocks
        requests = [RenderRequest(pkl=net_file, seeds=seed) for seed in range(40)]
        for request in requests:
            worker.submit(request)
            time.sleep(0.04)
        shown_during_drag = list(frames)
        assert worker.wait_idle(timeout=30)
    assert len(shown_during_drag) >= 3 and all(f.preview for f in shown_during_drag)
    seeds = [f.request.seeds for f in shown_during_drag]
    assert seeds == sorted(seeds) and len(set(seeds)) == len(seeds), "each preview is of a newer request"
    assert frames[-1].request == requests[-1] and not frames[-1].preview, "the full frame follows when it stops"
    assert frames[-2].request == requests[-1] and frames[-2].preview


def test_with_previews_off_a_quick_network_keeps_showing_frames_during_a_drag(net_file):
    # A small network (full frame ~25 ms here) with previews off: requests every 10 ms must not
    # cancel every frame before it lands. A long render still stops for a newer request (above).
    worker, _, frames = make_worker(block_delay=0.006)  # 32 px: 4 blocks
    with worker:
        worker.submit(RenderRequest(pkl=net_file, seeds=0))
        assert worker.wait_idle(timeout=30)  # the first frame tells the worker this network is quick
        del frames[:]
        requests = [RenderRequest(pkl=net_file, seeds=seed) for seed in range(1, 80)]
        for request in requests:
            worker.submit(request)
            time.sleep(0.01)
        shown_during_drag = list(frames)
        assert worker.wait_idle(timeout=30)
    assert len(shown_during_drag) >= 3
    assert frames[-1].request == requests[-1]


def test_prepare_for_drags_renders_in_the_background_shows_nothing_and_yields_to_a_submit(net_file):
    worker, loader, frames = make_worker(block_delay=0.05, resolution=256, preview_resolution=16)
    with worker:
        request = RenderRequest(pkl=net_file, seeds=1)
        worker.submit(request)
        assert worker.wait_idle(timeout=30)
        synthesis = loader.built[0].synthesis
        before = synthesis.blocks_run
        assert worker.prepare(request, Hand(resting=True))  # at 16 px: b4, b8 counted, then b16's image (the preview) ends it
        assert worker.wait_idle(timeout=30)
        assert synthesis.blocks_run == before + 2 and len(frames) == 1
        # A submit while it runs stops it at its next block and is rendered right after.
        worker.scheduler.preview_resolution = 128
        assert worker.prepare(request, Hand(resting=True))  # 0.3 s: 5 blocks counted
        time.sleep(0.08)
        assert not worker.prepare(request, Hand(resting=True)), "busy: not queued"
        newer = RenderRequest(pkl=net_file, seeds=2)
        worker.submit(newer)
        assert worker.wait_idle(timeout=30)
    assert [f.request for f in frames] == [request, newer]
    assert synthesis.blocks_run < before + 2 + 5 + 7, "the preview in the background stopped early"


def test_a_quick_layer_view_keeps_showing_during_a_drag_with_previews_on(net_file):
    # A layer view has no preview: where its capture is quick it is the frame to finish.
    worker, _, frames = make_worker(block_delay=0.006, preview=True, preview_resolution=8)
    with worker:
        worker.submit(RenderRequest(pkl=net_file, seeds=0, layer="b16.conv1"))
        assert worker.wait_idle(timeout=30)
        del frames[:]
        requests = [RenderRequest(pkl=net_file, seeds=seed, layer="b16.conv1") for seed in range(1, 80)]
        for request in requests:
            worker.submit(request)
            time.sleep(0.01)
        shown_during_drag = list(frames)
        assert worker.wait_idle(timeout=30)
    assert len(shown_during_drag) >= 3 and not any(f.preview for f in shown_during_drag)
    assert all(f.request.layer == "b16.conv1" and f.error is None for f in frames)
    assert frames[-1].request == requests[-1]


def test_after_a_recalled_frame_the_block_cache_follows_what_is_shown(net_file):
    # Going back shows the recent frame at once; the worker then runs the pass it saved, unpublished,
    # so that the next fine-layer change re-renders from where it enters instead of from b4.
    from renderer_standin import nudged_stylegan2, renderer_for

    frames = []
    worker = RenderWorker(renderer_for(nudged_stylegan2(seed=2).set_reference(False)), num_threads=0,
                          on_frame=frames.append)
    base = RenderRequest(pkl=net_file, seeds=1)
    with worker:
        for request in (base, RenderRequest(pkl=net_file, seeds=2), base):
            worker.submit(request)
            assert worker.wait_idle(timeout=30)
        assert [frame.recalled for frame in frames] == [False, False, True] and len(frames) == 3
        cache = next(iter(worker.renderer.sessions.values())).block_cache
        blocks = len(cache.entries)
        assert blocks == 5 and cache.blocks_run == blocks  # the unpublished pass: seed 2's blocks all replaced
        worker.submit(RenderRequest(pkl=net_file, seeds=1, noise_layer_strength=(("b64.conv1", 2.0),)))
        assert worker.wait_idle(timeout=30)
    assert len(frames) == 4 and not frames[-1].recalled and frames[-1].reused_blocks >= blocks - 1
    assert cache.blocks_run + cache.layers_run == 1  # only b64 ran (from its conv1)


def test_a_resubmit_that_stops_the_cache_catching_up_lets_it_finish_after(net_file):
    from renderer_standin import nudged_stylegan2, renderer_for

    G = nudged_stylegan2(seed=3).set_reference(False)
    frames = []
    # With previews on, frames stay cancellable however quick the network (with previews off a quick
    # network's frames, the catch-up pass among them, are let finish).
    worker = RenderWorker(renderer_for(G), preview=True, preview_resolution=16, num_threads=0, on_frame=frames.append)
    base = RenderRequest(pkl=net_file, seeds=1)
    reached, resubmitted = threading.Event(), threading.Event()

    def hold_the_catch_up(*_):
        if len(frames) == 1 and frames[0].recalled and not reached.is_set():  # this is the catch-up pass
            reached.set()
            resubmitted.wait(10)

    G.synthesis.b16.register_forward_pre_hook(hold_the_catch_up)
    with worker:
        for request in (base, RenderRequest(pkl=net_file, seeds=2)):
            worker.submit(request)
            assert worker.wait_idle(timeout=30)
        frames.clear()
        worker.submit(base)
        assert reached.wait(timeout=10)
        worker.submit(base)  # the window resubmits its unchanged state: the catch-up pass stops
        resubmitted.set()
        assert worker.wait_idle(timeout=30)
        assert len(frames) == 1 and frames[0].recalled  # nothing new published
        worker.submit(RenderRequest(pkl=net_file, seeds=1, noise_layer_strength=(("b64.conv1", 2.0),)))
        assert worker.wait_idle(timeout=30)
    cache = next(iter(worker.renderer.sessions.values())).block_cache
    assert cache.blocks_run + cache.layers_run == 1  # the catch-up went on after the resubmit: only b64 ran


def test_calls_run_on_the_worker_thread_in_order_and_a_submit_drops_none(net_file):
    worker, _, frames = make_worker(block_delay=0.02)
    with worker:
        seen = []
        worker.submit(RenderRequest(pkl=net_file, seeds=1))  # a render in flight: the calls wait for it
        first = worker.call(lambda renderer: seen.append(("first", threading.current_thread().name)) or 1)
        failing = worker.call(lambda renderer: 1 / 0)
        worker.submit(RenderRequest(pkl=net_file, seeds=2))  # replaces a pending request, never a call
        last = worker.call(lambda renderer: renderer.compute_ws(RenderRequest(pkl=net_file, seeds=3)).shape)
        assert last.wait(30) and first.done() and failing.done()
        assert seen == [("first", "RenderWorker")] and first.result == 1
        assert failing.result is None and failing.error.startswith("ZeroDivisionError")
        assert len(last.result) == 3 and last.error is None
        assert worker.wait_idle(timeout=30)
        assert worker.latest().request.seeds == ((2, 1.0),), "the worker went on rendering after a failing call"
