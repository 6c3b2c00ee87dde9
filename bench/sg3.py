"""Benchmark: StyleGAN3-T/-R frame time and peak resident memory on CPU (figures only, no asserts).

Each configuration runs in a fresh subprocess so that its peak memory (VmHWM) is its own.
    .venv/bin/python bench/sg3.py --threads 1      # T and R at 256 and 1024, lean path, one thread
    .venv/bin/python bench/sg3.py --configs t256 --reference   # NVIDIA-style zero-stuffing path
    .venv/bin/python bench/sg3.py --configs r1024 --check-layers   # each lean layer vs the reference
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# train.py defaults (z = w = 512, 2 mapping layers); R doubles channel_base/max and uses 1x1 convs
# with radial filters. magnitude_ema_beta as train.py sets it for batch 32.
CONFIGS = {
    "t256": dict(cfg="t", res=256),
    "r256": dict(cfg="r", res=256),
    "t1024": dict(cfg="t", res=1024),
    "r1024": dict(cfg="r", res=1024),
}


def peak_rss_mb():
    """Peak resident set size of this process (VmHWM), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(name, repeats, reference, threads):
    """Build one configuration with random weights, render batch-1 frames, print one JSON line."""
    sys.path.insert(0, str(ROOT))
    from models.runtime import short_openmp_waits, tune_cpu

    short_openmp_waits()  # as run_app.py does, before torch loads
    import torch
    from models import stylegan3

    tune_cpu(num_threads=threads or None)  # what the renderer does (glibc malloc kept warm)
    if threads:
        torch.set_num_threads(threads)

    torch.manual_seed(0)
    spec = CONFIGS[name]
    G = stylegan3.build(stylegan3.train_defaults(spec["cfg"], spec["res"]), reference=reference)
    num_params = sum(p.numel() for p in G.parameters())
    rss_built = peak_rss_mb()
    times = []
    with torch.no_grad():
        z = torch.randn([1, G.z_dim])
        ws = G.mapping(z, None, truncation_psi=0.7)
        for _ in range(repeats):
            start = time.perf_counter()
            img = G.synthesis(ws, noise_mode="const")
            times.append(time.perf_counter() - start)
    result = dict(config=name, architecture=G.architecture, resolution=spec["res"], reference=reference,
                  params_millions=round(num_params / 1e6, 2), threads=torch.get_num_threads(),
                  frame_seconds=[round(t, 2) for t in times], peak_rss_mb_after_build=round(rss_built),
                  peak_rss_mb=round(peak_rss_mb()), image_shape=list(img.shape),
                  image_std=round(float(img.std()), 4))
    print(json.dumps(result), flush=True)


def check_layers(name, threads, channels=16):
    """Run each layer of one lean frame again through the zero-stuffing reference, on the same input
    and for its first `channels` output channels (a whole reference frame of R-1024 needs more
    memory than 24 GB), and print the max abs differences."""
    sys.path.insert(0, str(ROOT))
    import copy

    import torch
    from models import stylegan3
    from models.runtime import tune_cpu

    tune_cpu(num_threads=threads or None)
    torch.manual_seed(0)
    spec = CONFIGS[name]
    G = stylegan3.build(stylegan3.train_defaults(spec["cfg"], spec["res"]))
    seen = {}
    layers = [getattr(G.synthesis, n) for n in G.synthesis.layer_names]
    handles = [layer.register_forward_hook(
        lambda m, args, out: seen.__setitem__(m, (args[0], out[:, :channels].clone()))) for layer in layers]
    with torch.no_grad():
        ws = G.mapping(torch.randn([1, G.z_dim]), None, truncation_psi=0.7)
        G.synthesis(ws, noise_mode="const")
        for handle in handles:
            handle.remove()
        diffs = {}
        for index, layer in enumerate(layers):
            x, out = seen.pop(layer)
            # The same layer cut to its first output channels (demodulation is per output channel).
            part = copy.copy(layer)
            part._parameters = dict(layer._parameters)
            keep = min(channels, layer.out_channels)
            part.weight = torch.nn.Parameter(layer.weight[:keep].clone())
            part.bias = torch.nn.Parameter(layer.bias[:keep].clone())
            part.out_channels = keep
            part.reference = True
            expected = part(x, ws[:, index + 1])
            diffs[G.synthesis.layer_names[index]] = (float((out - expected).abs().max()), float(expected.abs().max()))
            del x, out, expected, part
    print(json.dumps(dict(config=name, channels_checked=channels,
                          max_abs_diff_per_layer={k: f"{d:.1e} (of {m:.1f})" for k, (d, m) in diffs.items()})),
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="t256,r256,t1024,r1024", help="comma-separated: " + ",".join(CONFIGS))
    parser.add_argument("--repeats", type=int, default=2, help="frames timed per configuration")
    parser.add_argument("--reference", action="store_true", help="time the zero-stuffing reference path")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, all cores)")
    parser.add_argument("--check-layers", action="store_true",
                        help="instead of timing: each lean layer against the zero-stuffing reference")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.check_layers:
        for name in args.configs.split(","):
            check_layers(name, args.threads)
        return
    if args.one:
        run_one(args.one, args.repeats, args.reference, args.threads)
        return
    for name in args.configs.split(","):
        command = [sys.executable, __file__, "--one", name, "--repeats", str(args.repeats),
                   "--threads", str(args.threads)]
        if args.reference:
            command.append("--reference")
        done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
            print(json.dumps(dict(config=name, failed=done.returncode, error=tail[0])), flush=True)
        else:
            print(done.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
