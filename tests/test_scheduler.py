"""The scheduler: the window's previews where they pay, what is prepared for the hand, frames tagged by kind."""

import dataclasses

from renderer.renderer import Frame
from renderer.request import RenderRequest
from renderer.scheduler import SLOW_RENDER_MS, Hand, Scheduler, preview_resolution, previews_pay
from renderer.worker import RenderWorker
from renderer_standin import standin_loader


def full_frame(request, seconds, img_resolution, **flags):
    return Frame(image=object(), request=request, timings={"mapping": 0.0, "synthesis": seconds},
                 info={"img_resolution": img_resolution}, **flags)


def test_previews_pay_only_on_a_slow_device_and_a_network_larger_than_the_preview():
    assert preview_resolution(1024) == 128 and preview_resolution(64) == 16 and preview_resolution(None) == 16
    assert previews_pay(True, SLOW_RENDER_MS + 1, 1024)
    assert not previews_pay(True, SLOW_RENDER_MS - 1, 1024)  # quick enough in full
    assert not previews_pay(False, 5000, 1024)  # not wanted
    assert not previews_pay(True, None, 1024)  # cost unknown
    assert not previews_pay(True, 5000, 16)  # no larger than its preview


def test_the_windows_scheduler_judges_each_network_by_its_last_whole_pass():
    scheduler = Scheduler(preview=True, adaptive=True)
    big, small = RenderRequest(pkl="big.pkl", seeds=1), RenderRequest(pkl="small.pkl", seeds=1)
    assert scheduler.preview_for(big) == "auto"  # not rendered yet: the renderer decides by its size
    scheduler.note(full_frame(big, 2.0, 1024))
    scheduler.note(full_frame(small, 0.02, 64))
    assert scheduler.preview_for(big) == 128 and scheduler.preview_for(small) is None
    assert scheduler.preview_for(dataclasses.replace(big, layer="b16.conv1")) is None  # a layer view has none
    # A cached or recalled frame says nothing of the next coarse change's cost; a whole pass does.
    scheduler.note(full_frame(big, 0.01, 1024, reused_blocks=4))
    scheduler.note(full_frame(big, 0.0, 1024, recalled=True))
    assert scheduler.preview_for(big) == 128
    scheduler.note(full_frame(big, 0.05, 1024))
    assert scheduler.preview_for(big) is None
    scheduler.preview = False
    assert scheduler.preview_for(big) is None and scheduler.preview_for(small) is None


def test_a_quick_frame_with_no_preview_before_it_runs_to_the_end():
    scheduler = Scheduler()
    view = RenderRequest(pkl="a.pkl", seeds=1, layer="b8.conv1")
    assert not scheduler.finishes_anyway(view)  # unknown cost: a newer request cancels it
    scheduler.note(full_frame(view, 0.1, 64))
    assert scheduler.finishes_anyway(view)
    scheduler.note(full_frame(view, 1.0, 64))
    assert not scheduler.finishes_anyway(view)


def test_what_the_hand_does_decides_what_is_prepared():
    fixed = Scheduler(preview_resolution=32)
    request = RenderRequest(pkl="a.pkl", seeds=1)
    assert fixed.preparation(request, Hand()) is None  # nothing to prepare for
    assert fixed.preparation(request, Hand(resting=True)) is not None
    assert fixed.preparation(request, Hand(hovering_noise_layer="b8.conv1")) is not None
    window = Scheduler(preview=True, adaptive=True)
    assert window.preparation(request, Hand(resting=True)) is None  # cost unknown: previews may not pay
    window.note(full_frame(request, 2.0, 1024))
    assert window.preparation(request, Hand(resting=True)) is not None


def test_frames_are_tagged_full_preview_or_recalled(tmp_path):
    path = tmp_path / "standin.pkl"
    path.write_bytes(b"stand-in")
    request = RenderRequest(pkl=str(path), seeds=1)
    frames = []
    from renderer.renderer import Renderer

    renderer = Renderer("cpu", load=standin_loader(resolution=32))
    with RenderWorker(renderer, preview=True, preview_resolution=8, num_threads=0, on_frame=frames.append) as worker:
        worker.submit(request)
        assert worker.wait_idle(timeout=30)
        worker.submit(dataclasses.replace(request, seeds=2))
        assert worker.wait_idle(timeout=30)
        worker.submit(request)
        assert worker.wait_idle(timeout=30)
    assert [frame.kind for frame in frames] == ["preview", "full", "preview", "full", "recalled"]
