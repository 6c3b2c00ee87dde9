"""Benchmark: StyleGAN3-R 1024's 1x1 convolution shapes through oneDNN's convolution (what NVIDIA's
code runs) and through oneDNN's matmul (what the fast path runs), per band of rows as the fast path
cuts them, at one and two threads (figures only).
    .venv/bin/python bench/conv1x1.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models import runtime  # noqa: E402

runtime.short_openmp_waits()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from models import ops  # noqa: E402
from timers import best_of  # noqa: E402

# (out channels, in channels, side) of R-1024's layers' 1x1 convolutions, as bench/speed.py finds them.
SHAPES = [(1024, 1024, 148), (645, 1024, 148), (406, 645, 276), (256, 406, 276), (161, 256, 532),
          (102, 161, 1044), (64, 102, 1044), (64, 64, 1044)]
BAND_VALUES = 4_000_000  # output values per band of rows, about what the fast path takes


def main():
    runtime.tune_cpu()
    print("shape (out, in, side): ms for the whole layer (bands x band time) and GFLOP/s")
    print(f"{'threads':>7} {'shape':<18} {'conv ms':>8} {'GFLOP/s':>8} {'matmul ms':>10} {'GFLOP/s':>8}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        totals = [0.0, 0.0]
        for out_c, in_c, side in SHAPES:
            rows = max(8, BAND_VALUES // (side * out_c))
            x = torch.randn(1, in_c, rows, side).contiguous(memory_format=torch.channels_last)
            w = torch.randn(out_c, in_c)
            w4 = w[:, :, None, None].contiguous(memory_format=torch.channels_last)
            pixels = x.permute(0, 2, 3, 1).reshape(rows * side, in_c)
            bands = side / rows
            conv = best_of(lambda: F.conv2d(x, w4), 5, warm_up=True) * bands
            matmul = best_of(lambda: ops.rows_times_weight(pixels, w), 5, warm_up=True) * bands
            totals[0] += conv
            totals[1] += matmul
            gflop = 2 * out_c * in_c * side * side / 1e9
            print(f"{threads:>7} {str((out_c, in_c, side)):<18} {conv * 1000:8.0f} {gflop / conv:8.0f} "
                  f"{matmul * 1000:10.0f} {gflop / matmul:8.0f}")
        print(f"{threads:>7} {'all layers':<18} {totals[0] * 1000:8.0f} {'':>8} {totals[1] * 1000:10.0f}")


if __name__ == "__main__":
    main()
