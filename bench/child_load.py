"""Benchmark: what opening a network in a limited child process (the window's loader) adds to opening it in-process.

A StyleGAN2 config-f 1024 px network with random weights is written as .safetensors; it is then
opened alternately by load_generator (in-process) and by models.child_load (child parses, writes
plain tensors, parent reads them), side by side in one run. The forkserver's one-time start
(it imports torch) is measured separately: the window starts it in the background at launch.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from models import child_load  # noqa: E402
from models.loader import load_generator, save_safetensors  # noqa: E402
from models.stylegan2 import Generator  # noqa: E402
from timers import timed  # noqa: E402


def write_network(folder, resolution):
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256))
    G.info["format"] = "stylegan2-ada-pytorch"
    path = Path(folder) / f"sg2_{resolution}.safetensors"
    save_safetensors(G, path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process (the window's worker uses 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        path = write_network(folder, args.resolution)
        size_mb = path.stat().st_size / 1e6
        start, _ = timed(lambda: child_load.warm_up())
        cold, _ = timed(lambda: child_load.load_generator_isolated(path))
        plain, isolated = [], []
        for _ in range(args.repeats):
            seconds, G = timed(lambda: load_generator(path))
            plain.append(seconds)
            seconds, H = timed(lambda: child_load.load_generator_isolated(path))
            isolated.append(seconds)
        z = torch.randn(1, 512)
        same = torch.equal(G.mapping(z, None), H.mapping(z, None))
    p, i = statistics.median(plain), statistics.median(isolated)
    print(f"StyleGAN2-{args.resolution} ({size_mb:.0f} MB .safetensors), median of {args.repeats}:")
    print(f"  in-process load_generator     {p:6.2f} s")
    print(f"  child process (window)        {i:6.2f} s   (+{i - p:.2f} s, {i / p:.2f}x)")
    print(f"  first open, forkserver cold   {cold + start:6.2f} s   (its start happens once, at launch)")
    print(f"  same mapping output: {same}")


if __name__ == "__main__":
    main()
