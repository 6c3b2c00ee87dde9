"""Benchmark: batch images per second in this process, on 1 and 2 Ray workers and on `--ray local`,
with the scaling ratio, and the start-up cost of Ray's workers beside a process pool's (figures only).

Networks: the embedded default model and a random-weight 256 px StyleGAN2 (bench/speed.py's sg2-256).
Each way of running renders the same seeds into a fresh folder after a warm-up batch of its own
(numba compiles, first allocations), so the figures are steady-state throughput; start-up is
printed apart.
    nice .venv/bin/python bench/batch.py                  # both networks (a few minutes)
    .venv/bin/python bench/batch.py --nets default --images 32
    .venv/bin/python bench/batch.py --torgb               # ToRGB as a convolution and as ops.conv1x1
"""

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from models import runtime  # noqa: E402

runtime.short_openmp_waits()  # before torch loads, as run_app does

IMAGES = {"default": 96, "sg2-256": 16}  # timed images per way of running


def random_network(folder):
    """bench/speed.py's random-weight sg2-256, saved as .safetensors for the workers to load."""
    import speed

    from models.loader import save_safetensors

    path = Path(folder) / "sg2_256_random.safetensors"
    save_safetensors(speed.build(speed.CONFIGS["sg2-256"]), path)
    return str(path)


def measure(request, seeds, folder, workers=None, ray_address=None):
    """(start-up seconds, images per second) of one way of running."""
    from renderer import batch, distributed

    started = time.perf_counter()
    with distributed.open_pool(request, workers, ray_address) as pool:
        ready = time.perf_counter() - started
        warm = [seed + 100000 for seed in seeds[: 4 * pool.workers]]
        batch.run_batch(pool, request, warm, Path(folder) / "warm")
        begun = time.perf_counter()
        batch.run_batch(pool, request, seeds, Path(folder) / "timed")
        seconds = time.perf_counter() - begun
    return ready, len(seeds) / seconds


def _load_in_child(path, threads, queue):
    from renderer.distributed import RenderWorker
    from renderer.request import RenderRequest

    RenderWorker(threads).ready(RenderRequest(pkl=path))
    queue.put(os.getpid())


def process_pool_start(path, workers):
    """Seconds for `workers` spawned processes to import torch and load the network: what a
    process pool pays where Ray pays its start-up."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    started = time.perf_counter()
    children = [context.Process(target=_load_in_child, args=(path, 1, queue)) for _ in range(workers)]
    for child in children:
        child.start()
    for _ in children:
        queue.get(timeout=300)
    seconds = time.perf_counter() - started
    for child in children:
        child.join()
    return seconds


def torgb_times():
    """ms of a ToRGB 1x1 convolution (StyleGAN2 config-f widths) as oneDNN's convolution and as
    models.ops.conv1x1 (the thread-count-invariant matrix product the renderer uses), 1 and 2 threads."""
    import torch
    import torch.nn.functional as F

    from models import ops

    torch.manual_seed(0)
    print("| threads | channels x size | oneDNN conv ms | ops.conv1x1 ms |\n|---|---|---|---|")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for channels, size in ((32, 1024), (64, 512), (128, 256), (512, 64)):
            x = torch.randn(1, channels, size, size).contiguous(memory_format=torch.channels_last)
            weight, bias = torch.randn(3, channels, 1, 1), torch.randn(3)
            times = []
            for run in (lambda: F.conv2d(x, weight, bias=bias), lambda: ops.conv1x1(x, weight, bias)):
                run()
                samples = []
                for _ in range(15):
                    begun = time.perf_counter()
                    run()
                    samples.append(time.perf_counter() - begun)
                times.append(sorted(samples)[len(samples) // 4] * 1000)  # first quartile: the least disturbed
            print(f"| {threads} | {channels} x {size} | {times[0]:.1f} | {times[1]:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default="default,sg2-256")
    parser.add_argument("--images", type=int, help="timed images per way of running (default: per network)")
    parser.add_argument("--torgb", action="store_true", help="only time ToRGB's 1x1 convolution, both ways")
    args = parser.parse_args()
    if args.torgb:
        torgb_times()
        return
    import torch

    from renderer.request import RenderRequest

    cpus = os.cpu_count() or 1
    torch.set_num_threads(cpus)  # this process renders like `frame`: every core
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for net in args.nets.split(","):
            path = None if net == "default" else random_network(folder)
            request = RenderRequest(pkl=path, truncation_psi=0.7)
            seeds = list(range(args.images or IMAGES[net]))
            ways = [("this process", {}), ("1 worker", {"workers": 1}), ("2 workers", {"workers": 2}),
                    ("ray local", {"ray_address": "local"})]
            figures = {}
            for label, options in ways:
                figures[label] = measure(request, seeds, Path(folder) / net / label.replace(" ", "_"), **options)
                print(f"{net:8s} {label:13s} start {figures[label][0]:5.1f} s  {figures[label][1]:6.2f} images/s",
                      flush=True)
            pool_start = process_pool_start(path or str(_default_model()), 2)
            rows.append((net, figures, pool_start))
    print(f"\n{cpus} CPUs. Images per second after a warm-up (start-up apart):\n")
    print("| network | this process | 1 worker | 2 workers | ray local | 2 workers / 1 | Ray start (2) "
          "| process pool start (2) |")
    print("|---|---|---|---|---|---|---|---|")
    for net, figures, pool_start in rows:
        rate = {label: value[1] for label, value in figures.items()}
        print(f"| {net} | {rate['this process']:.2f} | {rate['1 worker']:.2f} | {rate['2 workers']:.2f} "
              f"| {rate['ray local']:.2f} | {rate['2 workers'] / rate['1 worker']:.2f}x "
              f"| {figures['2 workers'][0]:.1f} s | {pool_start:.1f} s |")


def _default_model():
    from renderer.renderer import DEFAULT_MODEL

    return DEFAULT_MODEL


if __name__ == "__main__":
    main()
