"""Headless commands of run_app.py (info, frame, drag, directions, convert, project) and what every
command shares: all cores, a progress bar, the base request without a command's own --seeds.

Each command runs as run(args, build_request), build_request making the RenderRequest from the
request flags. Only light imports at module level: run_app.py builds its parser before torch may load."""

import argparse
import json
import os
import sys
from pathlib import Path


def headless_threads():
    """Headless work may use every core."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)


def render_or_fail(renderer, request):
    """Render; a frame carrying an error becomes a ValueError (one line for the user)."""
    frame = renderer.render(request)
    if frame.error:
        raise ValueError(frame.error)
    return frame


def warn_if_transform_ignored(renderer, request):
    """--rotate/--translate/--scale only move StyleGAN3's input: say so when the network has none."""
    moved = (tuple(request.transform_translate) != (0.0, 0.0) or request.transform_rotate != 0.0
             or request.transform_scale != 1.0)
    if not moved:
        return
    from models import family

    _, G = renderer.load(request)
    if not family.has_input_transform(G):
        print(f"stylescope: warning: --rotate/--translate/--scale apply to StyleGAN3 networks only; "
              f"ignored for this {G.architecture} network", file=sys.stderr)


def mix_layers_from_text(text, request, renderer=None):
    """--mix-layers text as w indices: indices and ranges as they are; a named group (coarse, middle,
    fine) from the network's ws resolutions, so the network is opened (by renderer, when given) only
    for a group."""
    from renderer.request import mix_indices
    from renderer.request.fields import index_tokens

    _, indices = index_tokens(text)
    if indices is not None:
        return indices
    if renderer is None:
        from renderer.renderer import Renderer

        renderer = Renderer()
    _, G = renderer.load(request)
    return tuple(mix_indices(text, G.synthesis.ws_resolutions))


def base_request(args, build_request):
    """The request flags, without the command's own --seeds (a keyframe list, not a blend)."""
    plain = argparse.Namespace(**vars(args))
    plain.seeds = None
    return build_request(plain)


def tqdm_progress(total, unit):
    """A progress bar on stderr and the progress(done, total) callback that moves it."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, file=sys.stderr)

    def progress(done, _total):
        bar.update(done - bar.n)

    return bar, progress


def cmd_info(args, build_request):
    """Print the network's format, sizes and synthesis layers as JSON."""
    from renderer.renderer import Renderer
    from renderer.request import MIX_GROUPS, RenderRequest

    headless_threads()
    request = RenderRequest(pkl=getattr(args, "pkl", None), device=getattr(args, "device", None) or "auto")
    renderer = Renderer()
    frame = renderer.render(request)  # one pass also gives the layer list
    if frame.error:
        raise ValueError(frame.error)
    info = frame.info
    out = {
        "file": str(request.pkl) if request.pkl else "default model",
        "format": info.get("format"),
        "architecture": info.get("architecture"),
        "variant": info.get("variant"),
        "source": info.get("source"),  # checkpoints of tensors: what was inferred, defaulted, where w_avg came from
        "resolution": info["img_resolution"],
        "img_channels": info["img_channels"],
        "z_dim": info["z_dim"], "w_dim": info["w_dim"], "c_dim": info["c_dim"], "num_ws": info["num_ws"],
        "ws_resolutions": info["ws_resolutions"],
        "mix_groups": {name: _group_or_empty(name, info["ws_resolutions"]) for name in MIX_GROUPS},
        "default_truncation_psi": info.get("default_truncation_psi"),
        "default_truncation_cutoff": info.get("default_truncation_cutoff"),
        "layers": [{"name": name, "shape": list(shape), "resolution": res} for name, shape, res in frame.layers],
    }
    print(json.dumps(out, indent=2))
    return 0


def _group_or_empty(name, resolutions):
    from renderer.request import mix_indices

    try:
        return mix_indices(name, resolutions)
    except ValueError:  # this network has no layers in that group
        return []


def add_frame_arguments(parser):
    """Flags of the frame command (the request flags give the picture)."""
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--from-png", metavar="PNG", help="re-render the request stored in a StyleScope PNG")
    parser.add_argument("--save-latents", action="store_true", help="also write <out>_w.npy (and _z.npy)")
    parser.add_argument("--style", action="append", metavar="LAYER:CHANNEL=SIGMAS",
                        help="StyleSpace: move one style channel by SIGMAS standard deviations (repeatable)")


def cmd_frame(args, build_request):
    """Render one request to a PNG."""
    from renderer import directions, png_metadata
    from renderer.renderer import Renderer

    png_metadata.check_png_name(args.out)  # before rendering, not after
    if getattr(args, "from_png", None):
        headless_threads()
        _, warning = png_metadata.rebuild_from_png(Renderer(), args.from_png, args.out,
                                                   pkl=getattr(args, "pkl", None))
        if warning:
            print(f"stylescope: warning: {warning}", file=sys.stderr)
        print(f"wrote {args.out} (rebuilt from {args.from_png})")
        return 0
    request = build_request(args)
    headless_threads()
    renderer = Renderer()
    request = directions.with_style_flags(renderer, request, getattr(args, "style", None))
    frame = render_or_fail(renderer, request)
    warn_if_transform_ignored(renderer, request)
    # The PNG carries its request and the model's sha256, so `--from-png` rebuilds it exactly.
    written = png_metadata.export_frame(renderer, request, args.out,
                                        save_latents=getattr(args, "save_latents", False), image=frame.image)
    print(f"wrote {', '.join(map(str, written))} ({frame.image.shape[1]}x{frame.image.shape[0]}, {frame.timings['total']:.2f} s)")
    return 0


def cmd_drag(args, build_request):
    """Drag points on a frame; write the result's PNG and W+ (renderer/drag_cli.py)."""
    from renderer.drag_cli import cmd_drag as run
    from renderer.renderer import Renderer

    request = build_request(args)
    headless_threads()
    return run(args, request, Renderer())


def add_directions_arguments(parser):
    """Flags of `directions`: SeFa directions or one learned from labelled seeds (renderer/directions.py)."""
    parser.add_argument("--method", required=True, choices=["sefa", "svm"])
    parser.add_argument("--out", required=True, help=".npy file to write")
    parser.add_argument("--layers", default="all", help="sefa: all, coarse, middle, fine or w indices like 4-7")
    parser.add_argument("--num", type=int, default=5, help="sefa: how many directions (strongest first)")
    parser.add_argument("--positive", help="svm: seeds showing the attribute, e.g. 1,5,9")
    parser.add_argument("--negative", help="svm: seeds without it")
    parser.add_argument("--orthogonal", action="append", metavar="FILE",
                        help="svm: make the direction orthogonal to this one ([w_dim] .npy; repeatable)")
    parser.add_argument("--class", type=int, dest="class_idx", help="class label of a conditional network")


def cmd_directions(args, build_request):
    """Write SeFa or learned directions as .npy."""
    from renderer import directions

    headless_threads()
    return directions.run_directions_command(args)


def add_convert_arguments(parser):
    """Flags of the convert command."""
    parser.add_argument("--out", required=True, help=".safetensors file to write")


def cmd_convert(args, build_request):
    """Read a network file safely and write its generator as .safetensors plus a JSON config."""
    from models import load_generator
    from models.loader import save_safetensors

    if not getattr(args, "pkl", None):
        raise ValueError("convert: give --pkl FILE (the network to convert)")
    from models.atomic_write import WriteError, write_problem

    problem = write_problem(args.out)  # before the (slow) load, not after
    if problem:
        raise WriteError(problem)
    # The plain reference modules: their state dict has NVIDIA's names, which the file keeps.
    G = load_generator(args.pkl, device="cpu", reference=True)
    save_safetensors(G, args.out, extra_metadata={"converted_from": Path(args.pkl).name})
    print(f"wrote {args.out} ({G.info.get('architecture')}, {G.img_resolution}x{G.img_resolution}, from {args.pkl})")
    return 0


def add_project_arguments(parser):
    """Flags of the project command; defaults are ProjectionSettings' (docs/projection.md)."""
    from renderer.projection import SPACES, ProjectionSettings

    defaults = ProjectionSettings()
    add = parser.add_argument
    add("--target", required=True, help="the picture to project (centre-cropped to a square)")
    add("--space", choices=SPACES, default=defaults.space, help="w: one w for all layers; w+: one per layer")
    add("--steps", type=int, default=defaults.steps)
    add("--seed", type=int, default=defaults.seed, help="seeds the w noise and the w_avg samples")
    add("--out", required=True, help="the .npz to write (key 'w', [1, num_ws, w_dim])")
    add("--out-png", help="also write the final frame as a PNG that remembers its request")
    add("--video", help="also write the progress (target | reconstruction) as MP4 or GIF")
    add("--vgg", metavar="FILE", help="VGG16 weights you have (torchvision vgg16-*.pth or NVIDIA vgg16.pt)")
    for name in ("pixel", "msssim", "discriminator", "vgg"):
        add(f"--{name}-weight", type=float, default=None,
            help=f"weight of the {name} loss term (default {getattr(defaults, name):g}"
                 + (", 1 with --vgg" if name == "vgg" else "") + ")")


def cmd_project(args, build_request):
    """Project a picture into W / W+ and write projected_w.npz (plus a PNG and a video if asked)."""
    from renderer.project_command import run_project_command

    headless_threads()
    return run_project_command(args)
