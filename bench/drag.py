"""Benchmark: a drag step (renderer/drag.py) beside a forward frame of the same network (figures only).

For the default model (the mouth drag of tests/test_drag.py) and a random-weight StyleGAN2-256
(bench/speed.py's sg2-256): median forward frame as the app renders it (fast path, no autograd),
median drag step (the pass up to the feature stage with autograd, tracking, the backward pass, the
Adam step), the stages after the feature stage that a shown frame adds, steps per second, and
the time and steps to reach the target (or the budget), all in one run.
    nice .venv/bin/python bench/drag.py --threads 1
"""

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from timers import median_of, timed  # noqa: E402


def measure(name, G, ws, handles, targets, repeats, budget):
    import torch

    from renderer.drag import DragSession, DragSettings, run_drag

    def forward_frame():
        with torch.no_grad():
            G.synthesis(ws, noise_mode="const")

    forward_frame()  # warm-up (packed weights, numba)
    settings = DragSettings(steps=10 ** 6)
    probe = DragSession(G, ws, handles, targets, settings=settings)
    probe.step()  # warm-up (the first step also keeps the reference features)
    # Interleaved, so that both see the same load on a shared machine.
    frames, steps = [], []
    for _ in range(repeats):
        frames.append(median_of(forward_frame, 1))
        steps.append(median_of(probe.step, 1))
    frame, step = statistics.median(frames), statistics.median(steps)
    image = median_of(probe.image, repeats)
    settings = DragSettings(steps=budget)
    session = DragSession(G, ws, handles, targets, settings=settings)
    shown = []
    total, _ = timed(lambda: run_drag(session, on_frame=lambda _image, s: shown.append(s.steps_done)))
    reached = bool((session.distances() <= settings.stop_distance).all())
    resolution = G.synthesis.stage_resolutions()[session.stage]
    return dict(name=name, stage=f"stage {session.stage} ({resolution} px)", frame=frame, step=step,
                ratio=step / frame, image=image, steps_per_s=1 / step, total=total,
                steps=session.steps_done, reached=reached, frames=len(shown))


def default_model(repeats, budget):
    from renderer.renderer import Renderer
    from renderer.request import RenderRequest

    renderer = Renderer()
    request = RenderRequest(seeds=0, truncation_psi=0.7)
    _, G = renderer.load(request)
    return measure("default model 64 px (mouth 33,40 -> 27,40)", G, renderer.compute_ws(request),
                   [(33, 40)], [(27, 40)], repeats, budget)


def random_256(repeats, budget):
    import torch

    import speed

    G = speed.build(speed.CONFIGS["sg2-256"])
    G.set_reference(False)
    with torch.no_grad():
        ws = G.mapping(torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(0)), None)
    return measure("StyleGAN2-256 random weights (128,128 -> 136,128)", G, ws, [(128, 128)], [(136, 128)],
                   repeats, budget)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--budget", type=int, default=100, help="step budget of the timed drags")
    args = parser.parse_args()
    from models import runtime

    runtime.short_openmp_waits()
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads}")
    print("| network | feature stage | forward frame s | drag step s | step / frame | shown frame adds s "
          "| steps/s | drag to target s (steps, frames shown) |")
    print("|---|---|---|---|---|---|---|---|")
    for run in (default_model, random_256):
        r = run(args.repeats, args.budget)
        outcome = f"{r['total']:.2f} ({r['steps']} steps, {r['frames']} frames" + (")" if r["reached"] else
                                                                                     ", budget spent)")
        print(f"| {r['name']} | {r['stage']} | {r['frame']:.3f} | {r['step']:.3f} | {r['ratio']:.2f}x "
              f"| {r['image']:.3f} | {r['steps_per_s']:.1f} | {outcome} |", flush=True)


if __name__ == "__main__":
    main()
