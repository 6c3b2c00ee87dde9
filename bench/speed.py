"""Benchmark: CPU frame time of the reference and fast paths beside their convolutions alone (figures only).

Builds full-size networks in-process with random weights (StyleGAN2 at 256/512/1024, StyleGAN3-T/-R
at 1024), each in its own subprocess (so peak memory is its own) under a time limit, and prints a
markdown table: reference and fast frame time, the convolutions-only time measured in the same
run, GFLOP/s, max |fast - reference|, block-cache re-render times, preview latency, peak memory.
    nice .venv/bin/python bench/speed.py                 # everything (a few minutes)
    .venv/bin/python bench/speed.py --configs sg2-256    # one network
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from timers import best_of, timed

ROOT = Path(__file__).resolve().parent.parent

# StyleGAN2 as NVIDIA's train.py builds it (conv_clamp 256, fp16 in the top 4 resolutions, 8 mapping
# layers); 256/512 with channel base 16384 (stylegan2-ada's paper256/paper512), 1024 is config-f.
CONFIGS = {
    "sg2-256": dict(family="sg2", res=256, channel_base=16384),
    "sg2-512": dict(family="sg2", res=512, channel_base=16384),
    "sg2-1024": dict(family="sg2", res=1024, channel_base=32768),
    "sg3t-1024": dict(family="sg3", cfg="t", res=1024),
    "sg3r-1024": dict(family="sg3", cfg="r", res=1024),
}


def peak_rss_mb():
    """Peak resident set size of this process (VmHWM), in MiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(spec):
    """A generator with random weights (seeded) for one configuration."""
    import torch

    torch.manual_seed(0)
    if spec["family"] == "sg2":
        from models.stylegan2 import Generator

        G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=spec["res"], img_channels=3,
                      mapping_kwargs=dict(num_layers=8),
                      synthesis_kwargs=dict(channel_base=spec["channel_base"], channel_max=512, num_fp16_res=4,
                                            conv_clamp=256))
        with torch.no_grad():  # non-zero noise strengths and biases, as in a trained network
            for name, param in G.named_parameters():
                if name.endswith("noise_strength"):
                    param.fill_(0.05)
                elif name.endswith(".bias") and ".affine." not in name:
                    param.normal_(0, 0.1)
    else:
        from models import stylegan3

        G = stylegan3.build(stylegan3.train_defaults(spec["cfg"], spec["res"]))
    return G.eval().requires_grad_(False)


def conv_specs(G, ws):
    """(weight, input shape, kind) of every convolution one fast pass runs, found with forward hooks."""
    import torch

    specs = []
    handles = []
    for module in G.synthesis.modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.nn.Parameter) and weight.ndim == 4:
            def record(mod, inputs):
                if G.architecture.startswith("stylegan3"):
                    kind = "padded"  # NVIDIA's SG3: conv with padding k-1, before the filters
                else:
                    kind = "up" if getattr(mod, "up", 1) == 2 else "same"
                specs.append((mod.weight, tuple(inputs[0].shape), kind))
            handles.append(module.register_forward_pre_hook(record))
    try:
        G.synthesis(ws, noise_mode="const")
    finally:
        for handle in handles:
            handle.remove()
    return specs


def conv_gflop(specs):
    """Multiply-adds x 2 of the convolutions, in GFLOP."""
    total = 0
    for weight, shape, kind in specs:
        out_channels, in_channels, kh, kw = weight.shape
        height, width = shape[2], shape[3]
        if kind == "padded":
            pixels = (height + kh - 1) * (width + kw - 1)
        else:
            pixels = height * width  # 'up': each input pixel meets every tap once (stride-2 transposed)
        total += 2 * out_channels * in_channels * kh * kw * pixels
    return total / 1e9


def make_convs_only(specs):
    """A callable running just the convolutions NVIDIA's code runs (3x3 / stride-2 transposed / 1x1),
    channels-last, on inputs made beforehand: the floor a frame's time is measured against."""
    import torch
    import torch.nn.functional as F

    jobs = []
    for weight, shape, kind in specs:
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        w = weight.detach().contiguous(memory_format=torch.channels_last)
        if kind == "up":
            wt = weight.detach().transpose(0, 1).contiguous(memory_format=torch.channels_last)
            jobs.append(lambda x=x, wt=wt: F.conv_transpose2d(x, wt, stride=2))
        elif kind == "padded":
            jobs.append(lambda x=x, w=w: F.conv2d(x, w, padding=w.shape[-1] - 1))
        else:
            jobs.append(lambda x=x, w=w: F.conv2d(x, w, padding=w.shape[-1] // 2))

    def run():
        for job in jobs:
            job()

    return run


class _StopAt(Exception):
    pass


def preview_seconds(G, ws, resolution):
    """Time to the image accumulated up to block b{resolution} (the renderer's preview: stop there)."""
    import torch

    block = G.synthesis.get_submodule(f"b{resolution}")

    def stop(_module, _inputs, _output):
        raise _StopAt

    handle = block.register_forward_hook(stop)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            G.synthesis(ws, noise_mode="const")
    except _StopAt:
        pass
    finally:
        handle.remove()
    return time.perf_counter() - start


def run_sg2(name, spec, repeats, with_reference):
    import torch

    from models.block_cache import BlockCache

    G = build(spec)
    res = spec["res"]
    result = dict(config=name, resolution=res, threads=torch.get_num_threads())
    with torch.no_grad():
        ws = G.mapping(torch.randn([1, 512]), None, truncation_psi=0.7)
        other = G.mapping(torch.randn([1, 512]), None, truncation_psi=0.7)
        G.set_reference(False)
        # Fast path first, alone: its peak memory is the figure a user sees.
        fast = lambda: G.synthesis(ws, noise_mode="const")  # noqa: E731
        specs = conv_specs(G, ws)  # one fast pass
        fast()
        result["peak_rss_mb_fast"] = round(peak_rss_mb())
        convs_only = make_convs_only(specs)

        times = {"fast": [], "convs": [], "reference": []}
        images = {}
        for round_index in range(repeats + 1):  # interleaved, the first round is a warm-up
            G.set_reference(False)
            t, images["fast"] = timed(fast)
            times["fast"].append(t)
            times["convs"].append(timed(convs_only)[0])
            if with_reference and round_index < 3:  # the slow path: at most a warm-up and two timed frames
                G.set_reference(True)
                t, images["reference"] = timed(lambda: G.synthesis(ws, noise_mode="const"))
                times["reference"].append(t)
        G.set_reference(False)
        for key, values in times.items():
            if values:
                result[f"{key}_s"] = min(values[1:] or values)
        if with_reference:
            result["max_abs_diff"] = float((images["fast"] - images["reference"]).abs().max())
        result["gflop"] = round(conv_gflop(specs), 1)

        # Block cache: what dragging a fine control costs once the first frame is cached.
        cache = BlockCache()
        full_cached, base = timed(lambda: G.synthesis(ws, noise_mode="const", block_cache=cache))
        result["cache_mb"] = round(cache.nbytes() / 2 ** 20)
        rerender = {}
        resolutions = [min(2 ** (i // 2 + 2), res) for i in range(G.num_ws)]  # the renderer's mix groups
        exact = True
        changes = []
        for group_res in [r for r in sorted(set(resolutions)) if r >= 64][::-1]:
            # Mixing range [group_res, res] <- another seed: the drag step that adds this group.
            mixed = ws.clone()
            rows = [i for i, r in enumerate(resolutions) if r >= group_res]
            mixed[:, rows] = other[:, rows]
            changes.append((f"mix {group_res}+", mixed, 1.0))
        noisy = [key[: -len(".noise_strength")] for key in G.synthesis.state_dict() if key.endswith("noise_strength")]
        for layer in [n for n in noisy if int(n.split(".")[0][1:]) >= 256]:
            changes.append((f"noise {layer}", ws, {layer: 2.0}))
        fractions = {}
        cache_bytes = cache.nbytes()
        later = {}
        later_fractions = {}
        prepared, prepared_fractions = {}, {}
        for label, changed_ws, strength in changes:
            # Each re-render beside an uncached fast frame of the same change: the ratio is what counts.
            change = lambda: G.synthesis(changed_ws, noise_mode="const", noise_strength=strength,  # noqa: E731
                                         block_cache=cache)
            firsts, nexts, prepared_firsts, fulls = [], [], [], []
            dragged = G.synthesis.get_submodule(label.split()[1]) if label.startswith("noise") else None
            for _ in range(2):
                G.synthesis(ws, noise_mode="const", block_cache=cache)  # back to the cached frame
                cache.pre_noise = None  # the first step of a drag: nothing kept for the dragged layer yet
                t, img = timed(change)
                t_full, plain = timed(lambda: G.synthesis(changed_ws, noise_mode="const", noise_strength=strength))
                exact &= torch.equal(img, plain)
                # A later step of the same drag: the pass before it started at the dragged layer.
                G.synthesis(ws, noise_mode="const", block_cache=cache)
                t_next, img = timed(change)
                exact &= torch.equal(img, plain)
                if dragged is not None:
                    # The first step when the window prepared the layer while the hand was over its
                    # slider (BlockCache.prepare_noise_drag, done before the drag, not timed).
                    G.synthesis(ws, noise_mode="const", block_cache=cache)
                    cache.pre_noise = None
                    cache.prepare_noise_drag(G.synthesis, ws, dragged, noise_mode="const")
                    t_prepared, img = timed(change)
                    exact &= torch.equal(img, plain)
                    prepared_firsts.append(t_prepared)
                cache_bytes = max(cache_bytes, cache.nbytes())
                firsts.append(t)
                nexts.append(t_next)
                fulls.append(t_full)
            rerender[label] = min(firsts)
            fractions[label] = min(firsts) / min(fulls)
            later[label] = min(nexts)
            later_fractions[label] = min(nexts) / min(fulls)
            if prepared_firsts:
                prepared[label] = min(prepared_firsts)
                prepared_fractions[label] = min(prepared_firsts) / min(fulls)
        result["rerender_s"] = rerender
        result["rerender_fraction"] = fractions
        result["rerender_later_s"] = later
        result["rerender_later_fraction"] = later_fractions
        result["rerender_prepared_s"] = prepared
        result["rerender_prepared_fraction"] = prepared_fractions
        result["cache_mb_max"] = round(cache_bytes / 2 ** 20)
        result["rerender_exact"] = exact
        result["full_with_cache_s"] = full_cached
        G.synthesis(ws, noise_mode="const", block_cache=cache)
        result["unchanged_s"] = timed(lambda: G.synthesis(ws, noise_mode="const", block_cache=cache))[0]

        # Preview: early exit with the skip image of block b64 / b128 (the renderer's preview).
        result["preview_s"] = {f"b{r}": min(preview_seconds(G, ws, r) for _ in range(2)) for r in (64, 128)}
    result["peak_rss_mb"] = round(peak_rss_mb())
    return result


def run_sg3(name, spec, repeats, with_reference):
    import torch

    G = build(spec)
    result = dict(config=name, resolution=spec["res"], threads=torch.get_num_threads())
    with torch.no_grad():
        ws = G.mapping(torch.randn([1, G.z_dim]), None, truncation_psi=0.7)
        specs = conv_specs(G, ws)  # also the warm-up
        result["peak_rss_mb_fast"] = round(peak_rss_mb())
        convs_only = make_convs_only(specs)
        times = {"fast": [], "convs": [], "fast_cpu": [], "convs_cpu": []}
        for _ in range(repeats):  # interleaved; the hook pass above was the warm-up
            cpu = time.process_time()
            t, fast_img = timed(lambda: G.synthesis(ws, noise_mode="const"))
            times["fast_cpu"].append(time.process_time() - cpu)
            times["fast"].append(t)
            cpu = time.process_time()
            times["convs"].append(timed(convs_only)[0])
            times["convs_cpu"].append(time.process_time() - cpu)
        for key, values in times.items():
            result[f"{key}_s"] = min(values)
        result["gflop"] = round(conv_gflop(specs), 1)
        sg3_previews_and_cache(G, ws, result)
        if with_reference:
            G.set_reference(True)
            t, ref_img = timed(lambda: G.synthesis(ws, noise_mode="const"))
            result["reference_s"] = t
            result["max_abs_diff"] = float((fast_img - ref_img).abs().max())
    result["peak_rss_mb"] = round(peak_rss_mb())
    return result


def sg3_previews_and_cache(G, ws, result):
    """StyleGAN3: the renderer's preview (a reduced pass at a 16th of the image, 32 px at least) and
    the block cache's re-render for changes of the last layers' w, each against a fast frame."""
    import torch

    from models import stylegan3
    from models.family import reduced_resolution

    size = reduced_resolution(G, 64)
    stylegan3.reduced_synthesis(G.synthesis, ws, size)  # makes the kept weight transforms
    result["preview_s"] = {f"reduced {size}px": best_of(lambda: stylegan3.reduced_synthesis(G.synthesis, ws, size), 2)}

    other = G.mapping(torch.randn([1, G.z_dim]), None, truncation_psi=0.7)
    cache = G.synthesis.new_cache()
    G.synthesis(ws, noise_mode="const", block_cache=cache)
    result["cache_mb"] = round(cache.nbytes() / 2 ** 20)
    layers = len(G.synthesis.layer_names)
    rerender, fractions, exact = {}, {}, True
    for first in (layers, layers - 1, layers - 3, layers - 5):  # w index first.. feeds layers first-1..
        changed = ws.clone()
        changed[:, first:] = other[:, first:]
        G.synthesis(ws, noise_mode="const", block_cache=cache)  # back to the cached frame
        t, img = timed(lambda: G.synthesis(changed, noise_mode="const", block_cache=cache))
        t_full, plain = timed(lambda: G.synthesis(changed, noise_mode="const"))
        exact &= torch.equal(img, plain)
        label = f"mix w{first}+ (from {G.synthesis.layer_names[first - 1]})"
        rerender[label], fractions[label] = t, t / t_full
    result["rerender_s"], result["rerender_fraction"], result["rerender_exact"] = rerender, fractions, exact
    result["cache_mb_max"] = round(cache.nbytes() / 2 ** 20)
    G.synthesis(ws, noise_mode="const", block_cache=cache)
    result["unchanged_s"] = timed(lambda: G.synthesis(ws, noise_mode="const", block_cache=cache))[0]


def run_one(name, repeats, with_reference, tune, threads):
    sys.path.insert(0, str(ROOT))
    from models.runtime import short_openmp_waits, tune_cpu

    short_openmp_waits()  # as run_app.py does, before torch loads

    applied = tune_cpu(num_threads=threads or None) if tune else {}
    if threads:
        import torch

        torch.set_num_threads(threads)
    spec = CONFIGS[name]
    runner = run_sg2 if spec["family"] == "sg2" else run_sg3
    result = runner(name, spec, repeats, with_reference)
    result["tuned"] = bool(tune)
    result["malloc"] = applied.get("malloc", {})
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def print_tables(results):
    print()
    print("| network | reference s | fast s | speed-up | convs only s | fast / convs | GFLOP | GFLOP/s fast "
          "| max abs diff | preview s | peak MB fast (all) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['config']} | {r['error']} |" + " |" * 9)
            continue
        ref = r.get("reference_s")
        ref_text = _fmt(ref) if ref is not None else r.get("reference_note", "-")
        speedup = f"{ref / r['fast_s']:.2f}x" if ref else "-"
        preview = ", ".join(f"{k} {v:.2f}" for k, v in r.get("preview_s", {}).items()) or "-"
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-"
        print(f"| {r['config']} | {ref_text} | {r['fast_s']:.2f} | {speedup} | {r['convs_s']:.2f} "
              f"| {r['fast_s'] / r['convs_s']:.2f} | {r['gflop']} | {r['gflop'] / r['fast_s']:.0f} | {diff} "
              f"| {preview} | {r['peak_rss_mb_fast']} ({r['peak_rss_mb']}) |")
    sg3 = [r for r in results if "fast_cpu_s" in r]
    if sg3:
        # On a shared machine the process waits for a core now and then: with --threads 1 its own
        # CPU time is the steadier figure, measured in the same rounds as the wall times above.
        print()
        print("| network | fast CPU s | convs only CPU s | fast / convs (CPU time) |")
        print("|---|---|---|---|")
        for r in sg3:
            print(f"| {r['config']} | {r['fast_cpu_s']:.2f} | {r['convs_cpu_s']:.2f} "
                  f"| {r['fast_cpu_s'] / r['convs_cpu_s']:.2f} |")
    for r in results:
        if "rerender_s" not in r:
            continue
        print()
        kept = ("with a kept pre-noise output" if "rerender_later_s" in r
                else "of layer inputs (StageCache), the output included")
        print(f"Block cache, {r['config']} (full frame {r['fast_s']:.2f} s; unchanged {r['unchanged_s']:.3f} s; "
              f"cache {r['cache_mb']} MB, {r.get('cache_mb_max', r['cache_mb'])} MB {kept}; "
              f"re-render == uncached render: {r['rerender_exact']})")
        print()
        # StyleGAN2 only: later steps of a drag, and its first step prepared on hover (noise changes)
        extra = [(key, title) for key, title in (("rerender_later", "later steps"),
                                                 ("rerender_prepared", "first step, prepared on hover"))
                 if r.get(f"{key}_s")]
        print("| change | first step s | of a full frame |" + "".join(f" {t} s | of a full frame |" for _, t in extra))
        print("|---|---|---|" + "---|---|" * len(extra))
        for change, seconds in r["rerender_s"].items():
            cells = "".join(f" {r[f'{key}_s'][change]:.2f} | {r[f'{key}_fraction'][change]:.0%} |"
                            if change in r[f"{key}_s"] else " - | - |" for key, _ in extra)
            print(f"| {change} | {seconds:.2f} | {r['rerender_fraction'][change]:.0%} |{cells}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated: " + ",".join(CONFIGS))
    parser.add_argument("--repeats", type=int, default=3, help="timed frames per path (min is reported)")
    parser.add_argument("--time-limit", type=int, default=300, help="seconds per network subprocess")
    parser.add_argument("--sg3-reference", action="store_true",
                        help="also time StyleGAN3's zero-stuffing reference path (NVIDIA-like: minutes, GBs)")
    parser.add_argument("--no-tune", action="store_true", help="leave glibc malloc at its defaults")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, all cores)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--reference", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.one, args.repeats, bool(args.reference), not args.no_tune, args.threads)
        return

    import torch

    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {threads} torch threads, "
          f"float32, batch 1, malloc {'default' if args.no_tune else 'tuned (models/runtime.py)'}")
    results = []
    for name in args.configs.split(","):
        spec = CONFIGS[name]
        with_reference = spec["family"] == "sg2" or args.sg3_reference
        command = [sys.executable, __file__, "--one", name, "--repeats", str(args.repeats),
                   "--reference", str(int(with_reference)), "--threads", str(args.threads)]
        command += ["--no-tune"] if args.no_tune else []
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.time_limit)
        except subprocess.TimeoutExpired:
            results.append(dict(config=name, error=f"skipped (>{args.time_limit} s)"))
            print(f"{name}: skipped (>{args.time_limit} s)", flush=True)
            continue
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            tail = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            results.append(dict(config=name, error=f"failed: {tail}"))
            print(f"{name}: failed: {tail}", flush=True)
            continue
        result = json.loads(lines[-1][len("RESULT "):])
        if not with_reference:
            result["reference_note"] = "not run (--sg3-reference)"
        results.append(result)
        print(f"{name}: done in {time.perf_counter() - start:.0f} s: " + json.dumps(result), flush=True)
    print_tables(results)


if __name__ == "__main__":
    main()
