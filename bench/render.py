"""Benchmark the renderer: full frame time, preview latency, new-submit latency while a render is in flight,
frames on screen during a continuous slider drag, the mixing range dragged and back (recent frames),
the first step of a noise-strength drag with and without the window's hover preparation,
other views of a captured layer, the reduced-render previews (orig/resnet StyleGAN2,
StyleGAN3) against the full frame, and what the Vectors panel costs the window thread."""

import argparse
import dataclasses
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from renderer.renderer import Renderer  # noqa: E402
from renderer.request import RenderRequest  # noqa: E402
from renderer.scheduler import Hand  # noqa: E402
from renderer.worker import RenderWorker, ui_threads  # noqa: E402

FIXTURES = ["sg2ada_64", "sg3_sg2_64", "tf_sg2_64", "sg3_t_64", "sg1_64"]


def full_size_sg2_1024():
    """StyleGAN2 config-f at 1024 px (FFHQ's shape) with random weights, built in-process."""
    from models.stylegan2 import Generator

    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256))
    # Built directly, G is on the reference path; the fast path is what load_generator gives users.
    return G.set_reference(False).eval().requires_grad_(False)


def random_sg2(resolution, architecture):
    """StyleGAN2 config-f shape at any resolution and architecture, random weights, fast path."""
    from models.stylegan2 import Generator

    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256,
                                        architecture=architecture))
    return G.set_reference(False).eval().requires_grad_(False)


def random_sg3(config, resolution):
    """StyleGAN3-T or -R as train.py builds them (models.stylegan3.train_defaults), random weights, lean path."""
    from models import stylegan3

    G = stylegan3.build(stylegan3.train_defaults(config, resolution))
    return G.eval().requires_grad_(False)


def psnr_against_downscaled(preview, full, size):
    """PSNR (dB, 8-bit) of a nearest-upscaled preview against the full frame area-averaged to its size."""
    factor = full.shape[0] // size
    small_full = full.astype(np.float64).reshape(size, factor, size, factor, -1).mean(axis=(1, 3))
    small_preview = preview.astype(np.float64)[::factor, ::factor]
    mse = np.mean((small_preview - small_full) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def bench_reduced_previews(device, repeats, threads, fixtures):
    """Reduced-render previews (no early image in these networks) against the full frame: time and likeness."""
    sg3_64 = Path(fixtures) / "sg3_t_64.pkl"
    cases = [(f"stylegan2-{res} orig", lambda res=res: random_sg2(res, "orig"), (res // 4, res // 8, res // 16), repeats)
             for res in (256, 512, 1024)]
    cases.append(("stylegan2-1024 resnet", lambda: random_sg2(1024, "resnet"), (256, 128, 64), repeats))
    # StyleGAN3: what the app asks for (64 px); the renderer renders it at a 16th of the image, 32 px at least.
    for config, res in (("t", 256), ("t", 512), ("r", 512), ("t", 1024), ("r", 1024)):
        cases.append((f"stylegan3-{config}-{res}", lambda config=config, res=res: random_sg3(config, res), (64,), 1))
    if sg3_64.is_file():
        cases.insert(0, ("sg3_t_64 (fixture)", None, (32, 16), repeats))
    if threads:
        torch.set_num_threads(threads)
    print("reduced-render previews, Renderer.render on this thread (times in ms, median over new seeds;")
    print("  PSNR in dB of the preview against the full frame averaged down to the preview's size, mean)")
    print(f"  {'network':<22} {'full':>9}   {'asked/got px':>12} {'preview':>11} {'speed-up':>6} {'PSNR':>5}")
    for label, make, resolutions, count in cases:
        if make is None:
            renderer, pkl = Renderer(device), str(sg3_64)
        else:
            G = make().to(device)
            renderer, pkl = Renderer(device, load=lambda path, device="cpu", G=G: G), str(Path(__file__))
        renderer.render(RenderRequest(pkl=pkl, device=device, seeds=0))  # load, layer list, warm-up
        for res in resolutions:  # warm-up of the previews too (StyleGAN3 keeps its weights' transforms)
            renderer.render(RenderRequest(pkl=pkl, device=device, seeds=count + 1), preview_resolution=res)
        fulls, previews, psnrs = [], {r: [] for r in resolutions}, {r: [] for r in resolutions}
        for seed in range(1, count + 1):
            request = RenderRequest(pkl=pkl, device=device, seeds=seed)
            frames = {}
            for res in resolutions:  # before the full frame: a cached full frame of this seed skips previews
                frame = renderer.render(request, preview_resolution=res)
                assert frame.preview and frame.error is None, (label, res, frame.error)
                previews[res].append(frame.timings["total"])
                frames[res] = frame
            full = renderer.render(request)
            fulls.append(full.timings["total"])
            for res in resolutions:
                psnrs[res].append(psnr_against_downscaled(frames[res].image, full.image, frames[res].tensor_shape[-1]))
        full_ms = statistics.median(fulls) * 1000
        for index, res in enumerate(resolutions):
            preview_ms = statistics.median(previews[res]) * 1000
            head = f"  {label:<22} {full_ms:9.1f}" if index == 0 else f"  {'':<22} {'':>9}"
            size = f"{res}/{frames[res].tensor_shape[-1]}"
            print(f"{head}   {size:>12} {preview_ms:8.1f} ms {full_ms / preview_ms:5.1f}x {np.mean(psnrs[res]):5.1f}")


class FrameWatch:
    """Collects a worker's frames and lets the bench wait for the first one matching a test."""

    def __init__(self):
        self.frames = []
        self.cond = threading.Condition()

    def __call__(self, frame):
        with self.cond:
            self.frames.append((time.perf_counter(), frame))
            self.cond.notify_all()

    def wait_for(self, match, timeout=600):
        deadline = time.perf_counter() + timeout
        with self.cond:
            while True:
                for stamp, frame in self.frames:
                    if match(frame):
                        return stamp, frame
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise TimeoutError("no frame arrived")
                self.cond.wait(remaining)


def bench_network(label, make_renderer, pkl, device, repeats, preview_resolution, threads):
    renderer = make_renderer()
    warm = renderer.render(RenderRequest(pkl=pkl, device=device, seeds=0))  # load + layer list
    if warm.error:
        print(f"{label:<22} error: {warm.error}")
        return
    resolution = warm.image.shape[0]

    totals = []
    with RenderWorker(renderer, num_threads=threads) as worker:  # the thread the GUI renders on
        for seed in range(1, repeats + 1):  # new seeds: the mapping cache does not help
            worker.submit(RenderRequest(pkl=pkl, device=device, seeds=seed))
            worker.wait_idle()
            totals.append(worker.latest().timings["total"])
    full = statistics.median(totals)

    watch = FrameWatch()
    with RenderWorker(renderer, preview=True, preview_resolution=preview_resolution, num_threads=threads,
                      on_frame=watch) as worker:
        request = RenderRequest(pkl=pkl, device=device, seeds=1000)
        start = time.perf_counter()
        worker.submit(request)
        stamp, first = watch.wait_for(lambda f: f.request == request)
        preview_latency = stamp - start
        has_preview = first.preview
        worker.wait_idle()

    results = {}
    cancelled = True
    for preview in (False, True):
        watch = FrameWatch()
        with RenderWorker(renderer, preview=preview, preview_resolution=preview_resolution, num_threads=threads,
                          on_frame=watch) as worker:
            old = RenderRequest(pkl=pkl, device=device, seeds=2000 + preview)
            new = RenderRequest(pkl=pkl, device=device, seeds=3000 + preview)
            halfway = _halfway_signal(renderer, old)
            worker.submit(old)
            halfway.wait()  # the old render's synthesis has reached its middle block
            start = time.perf_counter()
            worker.submit(new)
            halfway.release()
            stamp, _ = watch.wait_for(lambda f: f.request == new)
            results[preview] = stamp - start
            worker.wait_idle()
            halfway.remove()
            cancelled &= not any(f.request == old and not f.preview for _, f in watch.frames)

    preview_text = f"{preview_latency * 1000:8.1f}" if has_preview else "    none"
    print(f"{label:<22} {resolution:>5} {full * 1000:9.1f} {preview_text} "
          f"{results[False] * 1000:13.1f} {results[True] * 1000:13.1f}  {'yes' if cancelled else 'NO'}")


def bench_mix_drag(renderer, pkl, device, preview_resolution, threads, steps=7):
    """A drag of the mixing range's low handle, one w at a time from the fine end and back, on a
    worker with previews on: the block cache re-renders from where the change enters, and skips the
    preview when that is above the preview's resolution; on the way back the frames are recalled."""
    _, G = renderer.load(RenderRequest(pkl=pkl, device=device))
    last = G.num_ws - 1
    watch = FrameWatch()
    print(f"mix range drag, worker with previews at {preview_resolution} px (times in ms from submit)")
    print(f"  {'mix_layers':<10} {'enters at':<15} {'first frame':>11} {'kind':<8} {'full frame':>10}")
    with RenderWorker(renderer, preview=True, preview_resolution=preview_resolution, num_threads=threads,
                      on_frame=watch) as worker:
        request = RenderRequest(pkl=pkl, device=device, seeds=5, mix_seed=6, mix_layers=f"{last}")
        worker.submit(request)
        worker.wait_idle()
        worker.prepare(request, Hand(resting=True))  # as the window does after a network's first frame
        worker.wait_idle()
        out = list(range(last - 1, max(last - 1 - steps, -1), -1))
        back = out[-2::-1] + [last]  # and back to where it started: each frame was made on the way out
        for low in out + back:
            request = dataclasses.replace(request, mix_layers=f"{low}-{last}")
            watch.frames.clear()
            start = time.perf_counter()
            worker.submit(request)
            first_stamp, first = watch.wait_for(lambda f: f.request == request)
            full_stamp, full = watch.wait_for(lambda f: f.request == request and not f.preview)
            worker.wait_idle()
            # NVIDIA's layout: w 2k feeds b{2**(k+2)}.conv1, w 2k+1 the next block's conv0 (and a torgb)
            enters = f"b{2 ** (low // 2 + 2)}.conv1" if low % 2 == 0 else f"b{2 ** (low // 2 + 3)}.conv0"
            if low == last:  # the last w feeds the last ToRGB alone
                enters = f"b{2 ** (low // 2 + 2)}.torgb"
            kind = "recalled" if full.recalled else "preview" if first.preview else "full"
            print(f"  {request.mix_layers:<10} {enters:<15} {(first_stamp - start) * 1000:11.1f} "
                  f"{kind:<8} {(full_stamp - start) * 1000:10.1f}")


NOISE_DRAG_LAYERS = ("b256.conv1", "b512.conv0", "b512.conv1", "b1024.conv0", "b1024.conv1")


def bench_noise_drag(renderer, pkl, device, preview_resolution, threads, layers, strength=1.5, repeats=3):
    """The first step of a drag of one layer's noise strength, through a worker as the window runs it:
    straight after the frame (nothing kept for the layer), and after the window prepared the layer
    because the mouse rested on its slider (RenderWorker.prepare with a hovering Hand). Each case starts from
    a new seed, so the block cache holds the pass of the image on screen and nothing of the layer."""
    watch = FrameWatch()
    print(f"noise drag, first step (worker with previews at {preview_resolution} px; ms from submit to the full "
          f"frame, minimum of {repeats})")
    print(f"  {'layer':<12} {'full frame':>10} {'first step':>10} {'prepared on hover':>17}")
    with RenderWorker(renderer, preview=True, preview_resolution=preview_resolution, num_threads=threads,
                      on_frame=watch) as worker:
        seed = 100
        first = RenderRequest(pkl=pkl, device=device, seeds=seed)
        worker.submit(first)  # the network's first frame, then what the window prepares after it
        worker.wait_idle()
        worker.prepare(first, Hand(resting=True))
        worker.wait_idle()

        def seconds_to_full_frame(request):
            watch.frames.clear()
            start = time.perf_counter()
            worker.submit(request)
            stamp, _ = watch.wait_for(lambda f: f.request == request and not f.preview)
            worker.wait_idle()
            return stamp - start

        for layer in layers:
            times = {"full": [], "plain": [], "hovered": []}
            for _ in range(repeats):  # interleaved; the minimum of each
                for prepared in (False, True):
                    seed += 1
                    base = RenderRequest(pkl=pkl, device=device, seeds=seed)
                    times["full"].append(seconds_to_full_frame(base))
                    if prepared and not worker.prepare(base, Hand(hovering_noise_layer=layer)):
                        raise RuntimeError("the worker did not take the preparation")
                    worker.wait_idle()
                    step = dataclasses.replace(base, noise_layer_strength=((layer, strength),))
                    times["hovered" if prepared else "plain"].append(seconds_to_full_frame(step))
            times = {key: min(values) for key, values in times.items()}
            full, plain, hovered = (times[key] * 1000 for key in ("full", "plain", "hovered"))
            print(f"  {layer:<12} {full:10.0f} {plain:10.0f} ({plain / full:4.0%}) {hovered:9.0f} ({hovered / full:4.0%})")


def bench_layer_views(label, renderer, pkl, device, threads, layers):
    """The Layers view: a layer captured right after the image of the same inputs (the block cache
    holds everything before the layer's block or stage), then for a new seed (a pass up to the layer),
    then other views of that capture (another channel, a grid, the FFT), made from the kept capture
    without a pass."""
    if threads:
        torch.set_num_threads(threads)
    print(f"layer views of {label}, Renderer.render on this thread (ms): the layer after the image, for a new")
    print("  seed, then other views of that capture")
    print(f"  {'layer':<12} {'from image':>10} {'new seed':>9} {'channel':>8} {'grid 16':>8} {'FFT':>8}  recalled")
    for seed, layer in enumerate(layers, start=40):
        image = RenderRequest(pkl=pkl, device=device, seeds=seed)
        renderer.render(image)
        view = dataclasses.replace(image, layer=layer, channel_mode="one", channel=0)
        from_image = renderer.render(view)
        view = dataclasses.replace(view, seeds=seed + 100)
        first = renderer.render(view)
        others = [renderer.render(dataclasses.replace(view, channel=channel)) for channel in (1, 2, 3)]
        grid = renderer.render(dataclasses.replace(view, channel_mode="grid", normalize="std"))
        fft = renderer.render(dataclasses.replace(view, fft=True))
        recalled = all(frame.recalled for frame in others + [grid, fft])
        channel_ms = statistics.median(frame.timings["total"] for frame in others) * 1000
        print(f"  {layer:<12} {from_image.timings['total'] * 1000:10.0f} {first.timings['total'] * 1000:9.0f} "
              f"{channel_ms:8.0f} {grid.timings['total'] * 1000:8.0f} {fft.timings['total'] * 1000:8.0f}  "
              f"{'yes' if recalled else 'NO'}")


def bench_vectors(G, pkl, device, threads, repeats):
    """What the Vectors panel costs: on the worker, with its thread count (RenderWorker.call), a
    network's principal directions (mapping 5000 z, once per network) and the ws of a seed (Freeze
    w, a seed-to-seed direction); on the window's thread, the state -> request step of every edit
    while an 18 x 512 w and 8 directions are in use."""
    from app.state import ExplorerState

    if threads:
        torch.set_num_threads(threads)
    renderer = Renderer(device, load=lambda path, device="cpu": G)
    request = RenderRequest(pkl=pkl, device=device)
    renderer.compute_ws(request)  # loaded
    principal = []
    for _ in range(repeats):
        next(iter(renderer.sessions.values())).principal.clear()  # each time from the start, as for a newly opened network
        started = time.perf_counter()
        renderer.principal_directions(request)
        principal.append(time.perf_counter() - started)
    seeds = []
    for seed in range(repeats):
        started = time.perf_counter()
        renderer.compute_ws(dataclasses.replace(request, seeds=1000 + seed))
        seeds.append(time.perf_counter() - started)
    rows = tuple(tuple(float(x) for x in row) for row in np.random.RandomState(0).randn(G.num_ws, G.w_dim))
    state = ExplorerState()
    state.update({"pkl": pkl, "latent": ("w", "bench", rows),
                  "directions": [(f"d{i}", 0.5, 10.0, rows) for i in range(8)]})
    started = time.perf_counter()
    for _ in range(20):
        state.to_request(device=device)
    to_request = (time.perf_counter() - started) / 20
    print(f"vectors panel, StyleGAN2-1024 ({threads or torch.get_num_threads()} torch threads, as the worker; ms, "
          f"median of {repeats}):")
    for label, seconds in (("principal directions (5000 z mapped, PCA)", statistics.median(principal)),
                           ("one seed's ws (Freeze w, seed directions)", statistics.median(seeds)),
                           (f"state -> request, {G.num_ws} x {G.w_dim} w, 8 directions", to_request)):
        print(f"  {label:<46} {seconds * 1000:8.1f}")


def bench_continuous_drag(label, renderer, pkl, device, preview_resolution, threads, interval=0.04, seconds=3.0):
    """A slider held and moved: a new request (truncation psi) every `interval` s for `seconds`, as
    the window sends them, on a worker with previews on. What reaches the screen meanwhile, and
    how soon the last request's full frame follows when the hand stops."""
    watch = FrameWatch()
    steps = int(seconds / interval)
    with RenderWorker(renderer, preview=True, preview_resolution=preview_resolution, num_threads=threads,
                      on_frame=watch) as worker:
        worker.submit(RenderRequest(pkl=pkl, device=device, seeds=7))
        worker.wait_idle()
        worker.prepare(RenderRequest(pkl=pkl, device=device, seeds=7), Hand(resting=True))
        worker.wait_idle()
        watch.frames.clear()
        start = time.perf_counter()
        for step in range(steps):
            request = RenderRequest(pkl=pkl, device=device, seeds=7, truncation_psi=round(1 - (step + 1) / steps, 4))
            worker.submit(request)
            time.sleep(max(0.0, start + (step + 1) * interval - time.perf_counter()))
        released = time.perf_counter()
        full_stamp, _ = watch.wait_for(lambda f: f.request == request and not f.preview)
    during = [stamp for stamp, frame in watch.frames if stamp <= released]
    gaps = [b - a for a, b in zip([start] + during, during)]
    print(f"slider drag, {label}: a request every {interval * 1000:.0f} ms for {seconds:.0f} s, previews asked "
          f"at {preview_resolution} px")
    print(f"  frames on screen during the drag: {len(during)}; first after {gaps[0] * 1000:.0f} ms; "
          f"longest wait {max(gaps) * 1000:.0f} ms; median {statistics.median(gaps) * 1000:.0f} ms; "
          f"full frame {(full_stamp - released) * 1000:.0f} ms after the last request" if during else
          "  no frame reached the screen during the drag")


class _halfway_signal:
    """Holds the old render at its middle synthesis child until the new request is submitted,
    so that the new submit really lands while the old render is in flight."""

    def __init__(self, renderer, request):
        _, G = renderer.load(request)
        children = [module for _, module in G.synthesis.named_children()]
        self.reached = threading.Event()
        self.submitted = threading.Event()
        self.handle = children[len(children) // 2].register_forward_pre_hook(self._hold)

    def _hold(self, *_):
        if not self.reached.is_set():
            self.reached.set()
            self.submitted.wait(60)

    def wait(self):
        if not self.reached.wait(600):
            raise TimeoutError("the old render never started")

    def release(self):
        self.submitted.set()

    def remove(self):
        self.handle.remove()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preview-resolution", type=int, default=64)
    parser.add_argument("--fixtures", default=str(ROOT.parent / "shared" / "fixtures"))
    parser.add_argument("--skip-1024", action="store_true", help="only the fixtures")
    parser.add_argument("--threads", type=int, default=None,
                        help="worker torch threads (default: half the cores, as the window)")
    parser.add_argument("--reduced-only", action="store_true", help="only the reduced-render preview table")
    parser.add_argument("--drag-only", action="store_true", help="only the StyleGAN2-1024 mix range and slider drags")
    parser.add_argument("--noise-drag-only", action="store_true",
                        help="only the first step of StyleGAN2-1024 noise drags, with and without the hover preparation")
    parser.add_argument("--vectors-only", action="store_true",
                        help="only the Vectors panel's costs (StyleGAN2-1024)")
    parser.add_argument("--views-only", action="store_true", help="only the layer views (StyleGAN2-1024, StyleGAN3-T 1024)")
    args = parser.parse_args()
    threads = args.threads if args.threads is not None else ui_threads()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    if device == "auto":
        device = "cpu"
    print(f"device {device}, worker torch threads {threads}, median of {args.repeats}; times in ms")
    if args.reduced_only:
        bench_reduced_previews(device, args.repeats, threads, args.fixtures)
        return
    if args.vectors_only:
        bench_vectors(full_size_sg2_1024().to(device), str(Path(__file__)), device, threads, args.repeats)
        return
    if args.views_only:
        for label, make, layers in (("stylegan2-1024", full_size_sg2_1024, ("b512.conv1", "b1024.conv1")),
                                    ("stylegan3-t-1024", lambda: random_sg3("t", 1024),
                                     ("L10_1044_81", "L12_1044_32", "L13_1024_32"))):
            G = make().to(device)
            renderer = Renderer(device, load=lambda path, device="cpu", G=G: G)
            renderer.render(RenderRequest(pkl=str(Path(__file__)), device=device, seeds=0))  # load, layer list
            bench_layer_views(label, renderer, str(Path(__file__)), device, threads, layers)
        return
    if args.noise_drag_only:
        G = full_size_sg2_1024().to(device)
        bench_noise_drag(Renderer(device, load=lambda path, device="cpu": G), str(Path(__file__)), device, 1024 // 8,
                         threads, NOISE_DRAG_LAYERS)
        return
    if args.drag_only:
        G = full_size_sg2_1024().to(device)
        renderer = Renderer(device, load=lambda path, device="cpu": G)
        bench_mix_drag(renderer, str(Path(__file__)), device, args.preview_resolution, threads)
        bench_noise_drag(renderer, str(Path(__file__)), device, 1024 // 8, threads, NOISE_DRAG_LAYERS)
        bench_continuous_drag("stylegan2-1024", renderer, str(Path(__file__)), device, 1024 // 8, threads)
        for config, res in (("t", 512), ("r", 512), ("t", 1024), ("r", 1024)):
            G = random_sg3(config, res).to(device)
            bench_continuous_drag(f"stylegan3-{config}-{res}", Renderer(device, load=lambda path, device="cpu", G=G: G),
                                  str(Path(__file__)), device, res // 8, threads)  # the window asks an eighth
        return
    print(f"{'network':<22} {'res':>5} {'full':>9} {'preview':>8} {'new submit':>13} {'new (preview)':>13}  old stopped")
    print("  full: one frame, new seed; preview: submit to first (preview) frame ('none': no cheap preview);")
    print("  new submit: submit while an old render is half way through synthesis, to the new request's")
    print("  first frame (without / with preview); old stopped: the old render never published a full frame")
    for name in FIXTURES:
        path = Path(args.fixtures) / f"{name}.pkl"
        if path.is_file():
            bench_network(name, lambda: Renderer(device), str(path), device, args.repeats,
                          args.preview_resolution, threads)
    if not args.skip_1024:
        G = full_size_sg2_1024().to(device)
        # The request must name an existing file; the replaced loader ignores it and returns G.
        renderer = Renderer(device, load=lambda path, device="cpu": G)
        bench_network("stylegan2-1024 random", lambda: renderer, str(Path(__file__)), device, args.repeats,
                      args.preview_resolution, threads)
        bench_mix_drag(renderer, str(Path(__file__)), device, args.preview_resolution, threads)
        bench_noise_drag(renderer, str(Path(__file__)), device, 1024 // 8, threads, NOISE_DRAG_LAYERS)
        bench_continuous_drag("stylegan2-1024", renderer, str(Path(__file__)), device, 1024 // 8, threads)
        bench_layer_views("stylegan2-1024", renderer, str(Path(__file__)), device, threads, ("b512.conv1", "b1024.conv1"))
    bench_reduced_previews(device, args.repeats, threads, args.fixtures)


if __name__ == "__main__":
    main()
