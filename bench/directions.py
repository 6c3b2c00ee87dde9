"""Benchmark what the Directions panel asks of the render thread on a 1024 px StyleGAN2 (random weights, FFHQ's
shape): SeFa's factorisation, the StyleSpace statistics, a find-from-examples ranking, a learned direction's
fit, and a StyleSpace edit's re-render against a full frame (block cache). Prints figures."""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.render import full_size_sg2_1024  # noqa: E402
from renderer import directions  # noqa: E402
from renderer.renderer import Renderer  # noqa: E402
from renderer.request import RenderRequest  # noqa: E402
from timers import median_of, timed  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app's worker: one per core)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    G = full_size_sg2_1024()
    renderer = Renderer("cpu", load=lambda path, device="cpu": G)
    request = RenderRequest(pkl=__file__, seeds=1)
    print(f"StyleGAN2 1024 px, random weights, {args.threads} torch thread(s)")

    seconds = median_of(lambda: directions.sefa_directions(G.synthesis, "all"), args.repeats)
    print(f"SeFa, all {len(directions.sefa_layers(G.synthesis)[1])} style layers: {seconds * 1000:.0f} ms")
    seconds = median_of(lambda: directions.sefa_directions(G.synthesis, "coarse"), args.repeats)
    print(f"SeFa, coarse layers: {seconds * 1000:.0f} ms")

    seconds, _ = timed(lambda: directions.style_statistics(renderer, request))
    print(f"StyleSpace statistics ({directions.STYLE_SAMPLES} mapped z, once per network): {seconds:.2f} s")
    seconds = median_of(lambda: directions.example_channels(renderer, request, [1, 2, 3, 4, 5]), args.repeats)
    print(f"find channels from 5 example seeds: {seconds * 1000:.0f} ms")

    rng = np.random.RandomState(0)
    positive, negative = rng.randn(12, 512) + 0.3, rng.randn(12, 512) - 0.3
    seconds = median_of(lambda: directions.fit_direction(positive, negative), args.repeats)
    print(f"learned direction, 12 + 12 examples (LinearSVC): {seconds * 1000:.0f} ms")

    renderer.render(request)  # fills the block cache
    full = median_of(lambda: renderer.render(RenderRequest(pkl=__file__, seeds=2)), 1)
    renderer.render(request)
    edits = [RenderRequest(pkl=__file__, seeds=1, style_offsets=[("b512.conv1", 3, 0.5 * (k + 1))])
             for k in range(args.repeats)]
    times = []
    for edit in edits:
        start = time.perf_counter()
        frame = renderer.render(edit)
        times.append(time.perf_counter() - start)
    print(f"full frame: {full:.2f} s; StyleSpace edit of b512.conv1 (block cache, {frame.reused_blocks} blocks reused): "
          f"{statistics.median(times):.2f} s ({statistics.median(times) / full:.0%} of a frame)")


if __name__ == "__main__":
    main()
