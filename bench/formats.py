"""Benchmark: opening a rosinality 1024 px checkpoint (config-f table, random weights) against the same
generator converted to our safetensors, and what estimating w_avg (4096 mapped z) adds (figures only).
With --check, also the largest difference of its image from a direct evaluation of rosinality's formulas.
    .venv/bin/python bench/formats.py [--size 1024] [--channel-multiplier 2] [--threads 1] [--check]
"""

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from models import runtime  # noqa: E402

runtime.short_openmp_waits()

import torch  # noqa: E402

import rosinality_reference as rosi  # noqa: E402
from models import rosinality  # noqa: E402
from models.loader import load_generator, save_safetensors  # noqa: E402
from timers import best_of  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channel-multiplier", type=int, default=2)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    runtime.tune_cpu()
    torch.set_num_threads(args.threads)
    sd = rosi.random_generator(args.size, 512, 8, rosi.channel_table(args.size, args.channel_multiplier))
    with tempfile.TemporaryDirectory() as folder:
        pt, st = Path(folder) / "g.pt", Path(folder) / "g.safetensors"
        torch.save({"g_ema": sd}, pt)
        G = load_generator(pt)
        save_safetensors(G, st)
        print(f"rosinality {args.size} px, {sum(v.numel() for v in sd.values()) / 1e6:.1f} M values, "
              f"{pt.stat().st_size / 1e6:.0f} MB, {args.threads} thread(s), best of {args.repeats}")
        load_pt = best_of(lambda: load_generator(pt), args.repeats)
        load_st = best_of(lambda: load_generator(st), args.repeats)
        estimate = best_of(lambda: rosinality.mean_latent(G), args.repeats)
        if args.check:
            check(G, sd)
    print(f"load_generator(.pt, w_avg estimated): {load_pt:.2f} s")
    print(f"load_generator(.safetensors):         {load_st:.2f} s  (ratio {load_pt / load_st:.2f})")
    print(f"of which mean_latent (4096 z):        {estimate:.2f} s")


@torch.no_grad()
def check(G, sd):
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0))
    ws = G.mapping(z, None, truncation_psi=0.7)
    expected = rosi.synthesis(sd, ws)
    for name, reference in (("fast path", False), ("reference path", True)):
        G.set_reference(reference)
        diff = float((G.synthesis(ws, noise_mode="const") - expected).abs().max())
        print(f"{name}: max abs diff from rosinality's formulas {diff:.1e} (image max {float(expected.abs().max()):.1f})")


if __name__ == "__main__":
    main()
