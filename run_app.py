"""StyleScope command line: open the explorer window, or run headless (info, frame)."""

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

# Errors that are the user's input, not our bug: one line on stderr, no traceback.
USER_ERRORS = (ValueError, OSError)


def build_parser():
    """The argument parser: global options, then one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="run_app.py",
        description="StyleScope: explore StyleGAN-family generators. Without a command, opens the window.",
    )
    parser.add_argument("--pkl", default=None, help="network file (default: the embedded default model)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:N, mps")
    # Subcommands repeat --pkl/--device so they may come after the command name too.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--pkl", default=argparse.SUPPRESS, help="network file (default: the embedded default model)")
    common.add_argument("--device", default=argparse.SUPPRESS, help="auto, cpu, cuda, cuda:N, mps")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = commands.add_parser("info", parents=[common], help="print what a network file holds, as JSON")
    info.set_defaults(func=cmd_info)

    frame = commands.add_parser("frame", parents=[common], help="render one frame to a PNG")
    add_request_arguments(frame)
    frame.add_argument("--out", required=True, help="PNG file to write")
    frame.set_defaults(func=cmd_frame)
    return parser


def add_request_arguments(parser):
    """The flags that make a RenderRequest (shared by commands that render)."""
    group = parser.add_argument_group("request")
    add = group.add_argument
    add("--request", metavar="FILE.json", help="start from a saved RenderRequest; flags below override it")
    add("--seed", type=int, help="seed (z = RandomState(seed).randn, as NVIDIA's gen_images.py)")
    add("--seeds", metavar="S:W,S:W", help="a weighted blend of seeds, blended in W")
    add("--seed-xy", metavar="X,Y", help="fractional position on NVIDIA's seed plane (seed = x + 100 y)")
    add("--w", metavar="FILE", dest="w_file", help="w vector(s) from .npy or .npz (key 'w'), e.g. a projection")
    add("--psi", type=float, help="truncation psi (default 1)")
    add("--cutoff", type=int, help="truncate only the first N ws")
    add("--class", type=int, dest="class_idx", help="class label of a conditional network")
    add("--mix-seed", type=int, help="style-mixing source seed")
    add("--mix-layers", help="w indices to mix: 4-7, coarse, middle, fine, or a list like 0,2,5")
    add("--mix-strength", type=float, help="0..1, lerp toward the mix source in W (default 1)")
    add("--noise-mode", choices=["const", "random", "none"])
    add("--noise-seed", type=int, help="seed of random noise")
    add("--noise-strength", type=float, help="global noise multiplier (default 1)")
    add("--noise-layer", action="append", metavar="NAME=MULT", help="per-layer noise multiplier (repeatable)")
    add("--layer", help="show this synthesis layer's feature maps (e.g. b16.conv1)")
    add("--channels", metavar="rgb:BASE|one:N|grid:N", help="which channels of --layer to show")
    add("--normalize", choices=["none", "minmax", "std"], help="per-channel normalisation of the view")
    add("--gain-db", type=float, help="view gain in dB")
    add("--fft", action="store_true", default=None, help="show the power spectrum in dB")
    add("--translate", metavar="X,Y", help="StyleGAN3 input translation (as gen_images.py)")
    add("--rotate", type=float, metavar="DEG", help="StyleGAN3 input rotation in degrees")
    add("--scale", type=float, help="StyleGAN3 input scale")
    add("--output-scale", type=float, help="resize the written image by this factor")
    add("--precision", choices=["fp32", "fp16"], help="fp16 lets fp16 layers run in half on CUDA")


def request_from_args(args):
    """A RenderRequest from --request (if any) with every given flag applied on top."""
    from renderer.request import RenderRequest

    base = RenderRequest()
    if getattr(args, "request", None):
        base = RenderRequest.from_json(Path(args.request).read_text())
    changes = {}
    if getattr(args, "pkl", None) is not None:
        changes["pkl"] = args.pkl
    if getattr(args, "device", "auto") != "auto":  # 'auto' is the default: keep the file's device
        changes["device"] = args.device
    simple = {
        "psi": "truncation_psi", "cutoff": "truncation_cutoff", "class_idx": "class_idx",
        "mix_seed": "mix_seed", "mix_layers": "mix_layers", "mix_strength": "mix_strength",
        "noise_mode": "noise_mode", "noise_seed": "noise_seed", "noise_strength": "noise_strength",
        "layer": "layer", "normalize": "normalize", "gain_db": "gain_db", "fft": "fft",
        "rotate": "transform_rotate", "scale": "transform_scale", "output_scale": "output_scale",
        "precision": "precision",
    }
    for flag, field in simple.items():
        if getattr(args, flag, None) is not None:
            changes[field] = getattr(args, flag)
    latent = _latent_changes(args)
    if latent:
        changes.update(seeds=base.seeds, seed_xy=None, z=None, w=None)  # the flag replaces the source
        changes.update(latent)
    if getattr(args, "noise_layer", None):
        changes["noise_layer_strength"] = dict(_name_value("--noise-layer", item) for item in args.noise_layer)
    if getattr(args, "channels", None):
        changes.update(_parse_channels(args.channels))
    if getattr(args, "translate", None):
        changes["transform_translate"] = _floats("--translate", args.translate, 2)
    if getattr(args, "mix_seed", None) is not None and getattr(args, "mix_layers", None) is None and not base.mix_layers:
        raise ValueError("--mix-seed: also give --mix-layers (e.g. coarse or 4-7)")
    return dataclasses.replace(base, **changes)


def _latent_changes(args):
    given = [name for name in ("seed", "seeds", "seed_xy", "w_file") if getattr(args, name, None) is not None]
    if len(given) > 1:
        raise ValueError(f"--{given[0].replace('_', '-')}: give only one of --seed, --seeds, --seed-xy, --w")
    if not given:
        return {}
    if args.seed is not None:
        return {"seeds": args.seed}
    if args.seeds is not None:
        pairs = [_name_value("--seeds", item, sep=":") for item in args.seeds.split(",") if item.strip()]
        return {"seeds": [(_int("--seeds", s), w) for s, w in pairs]}
    if args.seed_xy is not None:
        return {"seed_xy": _floats("--seed-xy", args.seed_xy, 2)}
    return {"w": _load_w(args.w_file)}


def _load_w(path):
    import numpy as np

    data = np.load(path)
    if hasattr(data, "files"):  # .npz
        if "w" not in data.files:
            raise ValueError(f"--w: {path} has no array named 'w' (found {', '.join(data.files)})")
        data = data["w"]
    return np.asarray(data, dtype=np.float64)


def _parse_channels(text):
    mode, _, number = text.partition(":")
    if mode not in ("rgb", "one", "grid") or not number:
        raise ValueError(f"--channels: expected rgb:BASE, one:N or grid:N, got {text!r}")
    value = _int("--channels", number)
    if mode == "grid":
        return {"channel_mode": "grid", "grid_channels": value}
    return {"channel_mode": mode, "channel": value}


def _name_value(flag, text, sep="="):
    name, found, value = text.partition(sep)
    if not found or not name.strip():
        raise ValueError(f"{flag}: expected NAME{sep}VALUE, got {text!r}")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise ValueError(f"{flag}: {value!r} is not a number") from None


def _floats(flag, text, count):
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != count:
        raise ValueError(f"{flag}: expected {count} comma-separated numbers, got {text!r}")
    return values


def _int(flag, text):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not an integer") from None


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


def write_png_atomic(image, path):
    """Write a uint8 image as PNG through a temp file in the target folder, then rename."""
    import tempfile

    from PIL import Image

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            Image.fromarray(image).save(file, format="PNG")
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def cmd_info(args):
    """Print the network's format, sizes and synthesis layers as JSON."""
    from renderer.renderer import Renderer
    from renderer.request import RenderRequest

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
        "resolution": info["img_resolution"],
        "img_channels": info["img_channels"],
        "z_dim": info["z_dim"], "w_dim": info["w_dim"], "c_dim": info["c_dim"], "num_ws": info["num_ws"],
        "ws_resolutions": info["ws_resolutions"],
        "default_truncation_psi": info.get("default_truncation_psi"),
        "default_truncation_cutoff": info.get("default_truncation_cutoff"),
        "layers": [{"name": name, "shape": list(shape), "resolution": res} for name, shape, res in frame.layers],
    }
    print(json.dumps(out, indent=2))
    return 0


def cmd_frame(args):
    """Render one request to a PNG."""
    from renderer.renderer import Renderer

    request = request_from_args(args)
    headless_threads()
    frame = render_or_fail(Renderer(), request)
    write_png_atomic(frame.image, args.out)
    print(f"wrote {args.out} ({frame.image.shape[1]}x{frame.image.shape[0]}, {frame.timings['total']:.2f} s)")
    return 0


def cmd_gui(args):
    """No command: open the explorer window."""
    try:
        from app.main import run_app
    except ModuleNotFoundError as exc:
        if exc.name not in ("app.main", "app"):
            raise
        print("stylescope: the window is not built yet (app/main.py is missing)", file=sys.stderr)
        return 2
    return run_app(args)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", cmd_gui)
    try:
        from models.errors import LoadError

        return func(args) or 0
    except (LoadError, *USER_ERRORS) as exc:
        print(f"stylescope: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _one_line(exc):
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename}: {exc.strerror}"
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
