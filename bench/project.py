"""Benchmark projection: steps per second, time to 28 dB on a self-rendered target, one step against one
forward frame (same network, same threads, measured side by side), and which loss terms converge best.

    python bench/project.py                 # default model and a random-weight 256 px StyleGAN2
    python bench/project.py --sweep         # PSNR after 300 steps for each loss combination (docs/projection.md)
    python bench/project.py --discriminator # the D term with D at full and at half resolution
    python bench/project.py --op-by-op      # also the step with autograd recording each op (no models/fused_grad.py)
"""

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from renderer.projection import ProjectionSettings, Projector, psnr, to_uint8  # noqa: E402
from renderer.renderer import DEFAULT_MODEL  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures"


def random_sg2_256():
    """A StyleGAN2 at 256 px with random weights (half config-f's widths), on the fast path."""
    from models.stylegan2 import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=16384, channel_max=256, num_fp16_res=0, conv_clamp=256))
    return G.set_reference(False).eval().requires_grad_(False)


def self_rendered_target(G, seed=7301, mix_seed=7302):
    """A picture the network makes (two seeds mixed at the middle ws), so a w+ exists that gives it back."""
    z = torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(seed * 1000 + mix_seed))
    with torch.no_grad():
        ws = G.mapping(z, None)
        ws[0, G.num_ws // 2:] = ws[1, G.num_ws // 2:]
        return to_uint8(G.synthesis(ws[:1], noise_mode="const"))


def forward_seconds(G, ws, repeats=3):
    """(wall, CPU) seconds of a forward frame, medians."""
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            G.synthesis(ws, noise_mode="const")
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


@contextlib.contextmanager
def op_by_op(active=True):
    """Inside: the StyleGAN2 layers of a step are recorded op by op (models/fused_grad.py stays out)."""
    from models import fused_grad

    saved = fused_grad.applies, fused_grad.torgb_applies
    if active:
        fused_grad.applies = fused_grad.torgb_applies = lambda *args: False
    try:
        yield
    finally:
        fused_grad.applies, fused_grad.torgb_applies = saved


def measure(name, G, steps, settings, target=None, feature_nets=None):
    target = self_rendered_target(G) if target is None else target
    projector = Projector(G, target, settings.replace(steps=steps), feature_nets=feature_nets)
    step_times, step_cpus, forward_times, forward_cpus, reached, elapsed = [], [], [], [], None, 0.0
    while not projector.done:
        start, cpu = time.perf_counter(), time.process_time()
        projector.step()
        step_times.append(time.perf_counter() - start)
        step_cpus.append(time.process_time() - cpu)
        elapsed += step_times[-1]
        wall, cpu = forward_seconds(G, projector.ws(), repeats=1)  # side by side, same load
        forward_times.append(wall)
        forward_cpus.append(cpu)
        if reached is None and projector.step_index % 10 == 0 and psnr(projector.image(), target) >= 28:
            reached = (projector.step_index, elapsed)
    step, forward = statistics.median(step_times), statistics.median(forward_times)
    # CPU time (one thread) moves less with the machine's load than wall time: both ratios are printed.
    cpu_ratio = statistics.median(step_cpus) / statistics.median(forward_cpus)
    to_28 = f"{reached[1]:.1f} s ({reached[0]} steps)" if reached else f"not within {steps} steps"
    print(f"{name}: {1 / step:.1f} steps/s, 28 dB after {to_28}, final {psnr(projector.image(), target):.1f} dB; "
          f"step {step * 1000:.0f} ms = {step / forward:.2f} x a forward frame ({forward * 1000:.0f} ms), "
          f"CPU time {cpu_ratio:.2f} x", flush=True)


SWEEP = {
    "pixel (default)": dict(),
    "pixel + MS-SSIM 0.1": dict(msssim=0.1),
    "pixel + MS-SSIM 1": dict(msssim=1.0),
    "MS-SSIM only": dict(pixel=0.0, msssim=1.0),
    "pixel + D features 0.1 (D at full size)": dict(discriminator=0.1, discriminator_downsample=1),
    "pixel + D features 1 (D at full size)": dict(discriminator=1.0, discriminator_downsample=1),
    "NVIDIA schedule (ramps, w noise 0.05), pixel": dict(msssim=0.0, lr_rampup=0.05, lr_rampdown=0.25, w_noise=0.05),
}


def sweep(G, D, steps):
    """PSNR after `steps` for each combination, W and W+, on a mixed, random-noise picture of G."""
    target_seeds = (7301, 7302)
    z = torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(target_seeds[0]))
    with torch.no_grad():
        ws = G.mapping(z, None)
        ws[0, 4:] = ws[1, 4:]
        target = to_uint8(G.synthesis(ws[:1], noise_mode="random",
                                      noise_generator=torch.Generator().manual_seed(11)))
    for space in ("w+", "w"):
        for name, changes in SWEEP.items():
            settings = ProjectionSettings(space=space, steps=steps, **changes)
            projector = Projector(G, target, settings, feature_nets={"discriminator": D.features})
            start = time.perf_counter()
            projector.run_steps(steps)
            seconds = time.perf_counter() - start
            print(f"{space:3} {name:48} {psnr(projector.image(), target):5.1f} dB  {seconds:5.1f} s", flush=True)


def random_nvidia_d_256():
    """A random-weight NVIDIA resnet D for the 256 px network (its step cost; its features mean nothing)."""
    from models.discriminator import Discriminator

    torch.manual_seed(1)
    return Discriminator(c_dim=0, img_resolution=256, img_channels=3, channel_base=16384, channel_max=256).eval() \
        .requires_grad_(False)


def acceptance_target():
    """The picture tests/test_projection.py projects back (seeds 7301/7302 mixed, random noise 11)."""
    import tempfile

    import numpy as np
    from PIL import Image

    import run_app

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "target.png")
        threads = torch.get_num_threads()
        run_app.main(["frame", "--seed", "7301", "--mix-seed", "7302", "--mix-layers", "middle,fine",
                      "--noise-mode", "random", "--noise-seed", "11", "--out", path])
        torch.set_num_threads(threads)  # the command takes every core
        return np.asarray(Image.open(path).convert("RGB"))


def discriminator_sizes(steps):
    """The D term (weight 0.1) with D's blocks on the full and on the half-resolution pictures."""
    from models.loader import load_discriminator, load_generator

    G, D = load_generator(DEFAULT_MODEL), load_discriminator(DEFAULT_MODEL)
    target = acceptance_target()
    for space in ("w+", "w"):
        for factor in (1, 2):
            settings = ProjectionSettings(space=space, discriminator=0.1, discriminator_downsample=factor)
            measure(f"default model, {space}, pixel + D 0.1, D at 1/{factor} size", G, steps, settings,
                    target=target, feature_nets={"discriminator": D.features})
    G, D = random_sg2_256(), random_nvidia_d_256()
    for factor in (1, 2):
        settings = ProjectionSettings(space="w+", discriminator=0.1, discriminator_downsample=factor)
        measure(f"random StyleGAN2 256 px, w+, pixel + D 0.1, D at 1/{factor} size", G, min(steps, 30), settings,
                feature_nets={"discriminator": D.features})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the window's worker uses 1-2)")
    parser.add_argument("--sweep", action="store_true", help="compare loss combinations (sg2ada_64 fixture, its D)")
    parser.add_argument("--discriminator", action="store_true", help="the D term with D at full and half size")
    parser.add_argument("--op-by-op", action="store_true", help="also measure the step without models/fused_grad.py")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from models.loader import load_discriminator, load_generator

    if args.discriminator:
        discriminator_sizes(args.steps)
        return
    if args.sweep:
        path = FIXTURES / "sg2ada_64.pkl"
        sweep(load_generator(path), load_discriminator(path), args.steps)
        return
    settings = ProjectionSettings(space="w+")
    models = (("default model 64 px, w+", load_generator(DEFAULT_MODEL), args.steps),
              ("random StyleGAN2 256 px, w+", random_sg2_256(), min(args.steps, 100)))
    for name, G, steps in models:
        for recorded in (False, True) if args.op_by_op else (False,):
            with op_by_op(recorded):
                measure(name + (", op by op" if recorded else ""), G, steps, settings)


if __name__ == "__main__":
    main()
