"""StyleScope command line: open the explorer window, or run headless (info, frame, video, grid, batch)."""

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
        # The window's request flags live here too: an abbreviation such as grid's --mix must not
        # be read as an ambiguous --mix-seed/--mix-layers before the command takes its own flags.
        allow_abbrev=False,
        description="StyleScope: explore StyleGAN-family generators. Without a command, opens the window, "
                    "starting from the request flags given (e.g. --seed 5 --psi 0.7).",
    )
    parser.add_argument("--pkl", default=None, help="network file (default: the embedded default model)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:N, mps")
    parser.add_argument("--session", default=None, metavar="FILE.json",
                        help="window: start from a saved session (the JSON that 'frame --request' reads)")
    # The window starts from the same request flags as `frame` (--seed 5 --psi 0.7 ...).
    add_request_arguments(parser)
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
    frame.add_argument("--from-png", metavar="PNG", help="re-render the request stored in a StyleScope PNG")
    frame.add_argument("--save-latents", action="store_true", help="also write <out>_w.npy (and _z.npy)")
    frame.add_argument("--style", action="append", metavar="LAYER:CHANNEL=SIGMAS",
                       help="StyleSpace: move one style channel by SIGMAS standard deviations (repeatable)")
    frame.set_defaults(func=cmd_frame)

    # conflict_handler: their --seeds is a keyframe / grid seed list, not add_request_arguments' blend.
    video = commands.add_parser("video", parents=[common], conflict_handler="resolve",
                                help="render an interpolation video, a sweep or a grid video (MP4 or GIF)")
    add_request_arguments(video)
    add_video_arguments(video)
    video.set_defaults(func=cmd_video)

    grid = commands.add_parser("grid", parents=[common], conflict_handler="resolve",
                               help="render a seed grid or a style-mixing grid to a PNG")
    add_request_arguments(grid)
    add_grid_arguments(grid)
    grid.set_defaults(func=cmd_grid)

    from renderer.drag_cli import add_drag_arguments

    drag = commands.add_parser("drag", parents=[common], help="drag handle points to targets (DragGAN) headless")
    add_request_arguments(drag)
    add_drag_arguments(drag)
    drag.set_defaults(func=cmd_drag)
    batch = commands.add_parser("batch", parents=[common], conflict_handler="resolve",
                                help="render one image per seed into a folder (resumable; --workers/--ray)")
    add_request_arguments(batch)
    add_batch_arguments(batch)
    batch.set_defaults(func=cmd_batch)
    add_pool_arguments(video)
    add_pool_arguments(grid)
    add_directions_command(commands, common)

    convert = commands.add_parser("convert", parents=[common],
                                  help="turn a network pickle into a safe .safetensors file (no code inside)")
    convert.add_argument("--out", required=True, help=".safetensors file to write")
    convert.set_defaults(func=cmd_convert)

    project = commands.add_parser("project", parents=[common],
                                  help="find the w (or W+) of a picture: writes NVIDIA's projected_w.npz")
    add_project_arguments(project)
    project.set_defaults(func=cmd_project)
    return parser


def add_directions_command(commands, common):
    """`directions`: SeFa directions or one learned from labelled seeds, as .npy (renderer/directions.py)."""
    parser = commands.add_parser("directions", parents=[common],
                                 help="write SeFa directions or a direction learned from labelled seeds (.npy)")
    parser.add_argument("--method", required=True, choices=["sefa", "svm"])
    parser.add_argument("--out", required=True, help=".npy file to write")
    parser.add_argument("--layers", default="all", help="sefa: all, coarse, middle, fine or w indices like 4-7")
    parser.add_argument("--num", type=int, default=5, help="sefa: how many directions (strongest first)")
    parser.add_argument("--positive", help="svm: seeds showing the attribute, e.g. 1,5,9")
    parser.add_argument("--negative", help="svm: seeds without it")
    parser.add_argument("--orthogonal", action="append", metavar="FILE",
                        help="svm: make the direction orthogonal to this one ([w_dim] .npy; repeatable)")
    parser.add_argument("--class", type=int, dest="class_idx", help="class label of a conditional network")
    parser.set_defaults(func=cmd_directions)


def cmd_directions(args):
    from renderer import directions

    headless_threads()
    return directions.run_directions_command(args)


def add_request_arguments(parser):
    """The flags that make a RenderRequest (shared by commands that render): one per request field
    declared with a flag (renderer/request/), plus the latent and multi-value flags written here."""
    from renderer.request import request_controls

    group = parser.add_argument_group("request")
    add = group.add_argument
    add("--request", metavar="FILE.json", help="start from a saved RenderRequest; flags below override it")
    add("--seed", type=int, help="seed (z = RandomState(seed).randn, as NVIDIA's gen_images.py)")
    add("--seeds", metavar="S:W,S:W", help="a weighted blend of seeds, blended in W")
    add("--seed-xy", metavar="X,Y", help="fractional position on NVIDIA's seed plane (seed = x + 100 y)")
    add("--w", metavar="FILE", dest="w_file", help="w vector(s) from .npy or .npz (key 'w'), e.g. a projection")
    add("--direction", action="append", metavar="FILE=STRENGTH",
        help="add STRENGTH times a direction in W (.npy/.npz: [w_dim] or [num_ws, w_dim]) to every w (repeatable)")
    for name, spec in request_controls().items():
        if spec.flag:
            add(spec.flag, dest=name, **flag_options(name, spec))
    add("--noise-layer", action="append", metavar="NAME=MULT", help="per-layer noise multiplier (repeatable)")
    add("--channels", metavar="rgb:BASE|one:N|grid:N", help="which channels of --layer to show")
    add("--translate", metavar="X,Y", help="StyleGAN3 input translation (as gen_images.py)")


def flag_options(name, spec):
    """argparse options for a declared field: its type, choices and a help made of its metadata."""
    from renderer.request import fields as check
    from renderer.request import field_default

    words = f"{spec.label}: {spec.tooltip}" if spec.label and spec.tooltip else spec.tooltip or name
    default = field_default(name)
    if spec.check is check.boolean:
        return {"action": "store_true", "default": None, "help": f"{words} (default off)"}
    if spec.choices:
        return {"choices": list(spec.choices), "help": f"{words} (default {default})"}
    if name == "mix_layers":  # text parsed once the network is known (request_from_args)
        return {"metavar": "LAYERS", "help": f"{words}: 4-7, coarse, middle, fine, or a list like 0,2,5"}
    kind = {check.real: float, check.integer: int}.get(spec.check)
    if kind is None:
        return {"metavar": "NAME", "help": words}
    bounds = f"{spec.low:g}..{spec.high:g}, " if kind is float else f"{spec.low}..{spec.high}, "
    shown = "off" if default is None else f"{default:g}" if kind is float else default
    return {"type": kind, "metavar": "X" if kind is float else "N", "help": f"{words} ({bounds}default {shown})"}


def request_from_args(args):
    """A RenderRequest from --request (if any) with every given flag applied on top."""
    from renderer.request import RenderRequest, request_controls

    base = RenderRequest()
    if getattr(args, "request", None):
        from renderer.request_files import choose_network, read_request_file

        saved = read_request_file(args.request)  # size and nesting bounded before parsing
        base = saved.request
        if getattr(args, "pkl", None) is None:  # its network only beside it (same name and sha256)
            base = choose_network(saved, None, "give the network with --pkl FILE")
    changes = {}
    if getattr(args, "pkl", None) is not None:
        changes["pkl"] = args.pkl
    if getattr(args, "device", "auto") != "auto":  # 'auto' is the default: keep the file's device
        changes["device"] = args.device
    for name, spec in request_controls().items():
        if spec.flag and getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    latent = _latent_changes(args)
    if latent:
        changes.update(seeds=base.seeds, seed_xy=None, z=None, w=None)  # the flag replaces the source
        changes.update(latent)
    if getattr(args, "direction", None):
        changes["w_offset"] = _direction_offset(args.direction)
    if getattr(args, "noise_layer", None):
        changes["noise_layer_strength"] = dict(_name_value("--noise-layer", item) for item in args.noise_layer)
    if getattr(args, "channels", None):
        changes.update(_parse_channels(args.channels))
    if getattr(args, "translate", None):
        changes["transform_translate"] = _floats("--translate", args.translate, 2)
    if getattr(args, "mix_seed", None) is not None and getattr(args, "mix_layers", None) is None and not base.mix_layers:
        raise ValueError("--mix-seed: also give --mix-layers (e.g. coarse or 4-7)")
    if "mix_layers" in changes:
        changes["mix_layers"] = _mix_layers(changes["mix_layers"], dataclasses.replace(base, **{**changes, "mix_layers": ()}))
    return dataclasses.replace(base, **changes)


def _mix_layers(text, request, renderer=None):
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


def _direction_offset(items):
    """The sum of STRENGTH x direction over --direction FILE=STRENGTH items: the request's w_offset."""
    from renderer.export import load_direction
    from renderer.request.latents import direction_sum

    terms = []
    for item in items:
        path, found, strength = item.rpartition("=")  # the file name may hold '=' itself
        if not found or not path:
            raise ValueError(f"--direction: expected FILE=STRENGTH, got {item!r}")
        try:
            terms.append((float(strength), load_direction(path)))
        except ValueError as error:  # ExportError included: unreadable or missing file
            raise ValueError(f"--direction: {error}") from None
    try:
        return direction_sum(terms)
    except ValueError as error:
        raise ValueError(f"--direction: {error}") from None


def _load_w(path):
    from models.errors import clean_line, error_line
    from models.limits import NumpyFile

    try:
        with NumpyFile(path) as data:  # headers checked before any data is read; never unpickled
            if data.names is None:
                return data.array()
            if "w" not in data.names:
                raise ValueError(f"{clean_line(path)} has no array named 'w' (found {clean_line(', '.join(data.names))})")
            return data.array("w")
    except OSError as error:
        raise ValueError(f"--w: {clean_line(path)}: not a readable numpy array file ({error_line(error)})") from None
    except ValueError as error:
        raise ValueError(f"--w: {error}") from None


def _parse_channels(text):
    from renderer.request import CHANNEL_MODES

    mode, _, number = text.partition(":")
    if mode not in CHANNEL_MODES or not number:
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


def warn_if_transform_ignored(renderer, request):
    """--rotate/--translate/--scale only move StyleGAN3's input: say so when the network has none."""
    moved = (tuple(request.transform_translate) != (0.0, 0.0) or request.transform_rotate != 0.0
             or request.transform_scale != 1.0)
    if not moved:
        return
    _, G = renderer.load(request)
    if not str(G.architecture).startswith("stylegan3"):
        print(f"stylescope: warning: --rotate/--translate/--scale apply to StyleGAN3 networks only; "
              f"ignored for this {G.architecture} network", file=sys.stderr)


def cmd_info(args):
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


def cmd_frame(args):
    """Render one request to a PNG."""
    from renderer import directions
    from renderer.renderer import Renderer

    from renderer import export

    export.check_png_name(args.out)  # before rendering, not after
    if getattr(args, "from_png", None):
        headless_threads()
        _, warning = export.rebuild_from_png(Renderer(), args.from_png, args.out, pkl=getattr(args, "pkl", None))
        if warning:
            print(f"stylescope: warning: {warning}", file=sys.stderr)
        print(f"wrote {args.out} (rebuilt from {args.from_png})")
        return 0
    request = request_from_args(args)
    headless_threads()
    renderer = Renderer()
    request = directions.with_style_flags(renderer, request, getattr(args, "style", None))
    frame = render_or_fail(renderer, request)
    warn_if_transform_ignored(renderer, request)
    # The PNG carries its request and the model's sha256, so `--from-png` rebuilds it exactly.
    written = export.export_frame(renderer, request, args.out, save_latents=getattr(args, "save_latents", False),
                                  image=frame.image)
    print(f"wrote {', '.join(map(str, written))} ({frame.image.shape[1]}x{frame.image.shape[0]}, {frame.timings['total']:.2f} s)")
    return 0


def add_video_arguments(parser):
    """Flags of the video command (the request flags give the base frame)."""
    from renderer.export import SWEEP_CONTROLS  # numpy only: the parser stays quick to build
    from renderer.interpolate import EASINGS, INTERPOLATIONS

    group = parser.add_argument_group("video")
    add = group.add_argument
    add("--seeds", metavar="0,1,2", help="keyframe seeds (ranges like 3-7 allowed)")
    add("--keyframes", metavar="K,K", help="keyframes: seeds, .npy/.npz latents, .json sessions, .png exports")
    add("--frames-per-transition", type=int, default=30, help="frames from one keyframe to the next (default 30)")
    add("--interp", choices=INTERPOLATIONS, default="slerp-z", help="interpolation (default slerp-z)")
    add("--easing", choices=EASINGS, default="linear")
    add("--loop", action="store_true", help="return to the first keyframe: a seamless loop")
    add("--grid", metavar="RxC", help="a grid video: one seed sequence per cell")
    add("--sweep", choices=list(SWEEP_CONTROLS), help="sweep one control instead (direction: the --direction "
        "offset times -1..1)")
    add("--sweep-from", type=float, help="sweep start (psi, mix_strength, noise_seed, direction)")
    add("--sweep-to", type=float, help="sweep end (psi, mix_strength, direction)")
    add("--sweep-width", type=int, help="mix_layers sweep: how many ws the sliding window covers (default 2)")
    add("--frames", type=int, default=60, help="frames of a sweep (default 60)")
    add("--fps", type=float, default=30, help="frames per second (default 30)")
    add("--quality", type=float, default=8, help="MP4 quality 1-10 (10: lossless H.264; default 8)")
    add("--pixel-format", choices=["yuv444p", "yuv420p"], default="yuv444p",
        help="MP4 colour: yuv444p full colour (default), yuv420p for players that need it (Safari, phones)")
    add("--out", required=True, help="video file to write: .mp4 or .gif")


def add_grid_arguments(parser):
    """Flags of the grid command (the request flags give every cell's other settings)."""
    group = parser.add_argument_group("grid")
    add = group.add_argument
    add("--seeds", metavar="0-5", help="seed grid: the seeds, row by row")
    add("--grid", metavar="RxC", help="seed grid shape (default: one row)")
    add("--rows", metavar="S,S", help="style-mixing grid: row seeds (they keep their other styles)")
    add("--cols", metavar="S,S", help="style-mixing grid: column seeds (they give the mixed styles)")
    add("--mix", default="coarse", help="style-mixing grid: coarse, middle, fine or a range like 4-7")
    add("--padding", type=int, default=0, help="pixels between cells")
    add("--out", required=True, help="PNG file to write")


def add_batch_arguments(parser):
    """Flags of the batch command (the request flags give every image's other settings)."""
    group = parser.add_argument_group("batch")
    add = group.add_argument
    add("--seeds", required=True, metavar="A-B", help="the seeds, e.g. 0-49999 or 1,5,9-12")
    add("--out", required=True, metavar="DIR", help="folder for seed0000.png ... and manifest.json")
    add("--format", default="png", choices=["png", "jpg"], help="png (default; equals `frame`'s) or jpg")
    add("--grid", metavar="RxC", help="also a contact sheet per R*C seeds: grid_seedA-B.png")
    add_pool_arguments(parser)


def add_pool_arguments(parser):
    """--workers / --ray: render in shards on Ray workers (renderer/distributed.py)."""
    group = parser.add_argument_group("workers")
    group.add_argument("--workers", type=int, metavar="N",
                       help="N worker processes (a local Ray; with --ray: N workers on that cluster)")
    group.add_argument("--ray", metavar="ADDRESS|local",
                       help="Ray cluster to render on (ray start --head ...), or 'local' to start one here")


def _pool(args, request, renderer=None):
    from renderer.distributed import open_pool

    return open_pool(request, args.workers, args.ray, renderer)


def cmd_batch(args):
    """Render one image file per seed into a folder; a rerun renders only the missing ones."""
    from renderer import batch, export

    given = [flag for flag, name in (("--seed", "seed"), ("--seed-xy", "seed_xy"), ("--w", "w_file"))
             if getattr(args, name, None) is not None]
    if given:
        raise ValueError(f"batch: {given[0]} does not apply; the seeds come from --seeds A-B")
    seeds = batch.parse_batch_seeds(args.seeds)
    grid = export.parse_grid_shape(args.grid) if args.grid else None
    base = _base_request(args)
    headless_threads()
    from renderer.renderer import Renderer

    renderer = Renderer(recent_frames_bytes=0, recent_captures_bytes=0)
    export.check_mixing(renderer, [base])
    warn_if_transform_ignored(renderer, base)
    batch.prepare_folder(base, seeds, args.out, args.format, grid, args.seeds)  # before workers start
    with _pool(args, base, renderer) as pool:
        bar, progress = _tqdm_progress(len(seeds), "image")
        try:
            result = batch.run_batch(pool, base, seeds, args.out, args.format, grid, args.seeds, progress)
        finally:
            bar.close()
    sheets = f", {len(result.sheets)} contact sheets" if grid else ""
    print(f"wrote {len(result.written)} images to {args.out} ({len(result.skipped)} were there){sheets}")
    return 0


def _base_request(args):
    """The request flags, without the command's own --seeds (a keyframe list, not a blend)."""
    plain = argparse.Namespace(**vars(args))
    plain.seeds = None
    return request_from_args(plain)


def _tqdm_progress(total, unit):
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, file=sys.stderr)

    def progress(done, _total):
        bar.update(done - bar.n)

    return bar, progress


def cmd_video(args):
    """Render keyframe interpolation, a sweep of one control, or a grid video to MP4 / GIF."""
    from renderer import export, interpolate
    from renderer.renderer import Renderer

    from renderer.video import check_video_settings, video_format

    # Settings the writer would refuse, refused before the first frame is rendered, not after.
    check_video_settings(args.fps, args.quality)
    video_format(args.out)
    base = _base_request(args)
    headless_threads()
    renderer = Renderer(recent_frames_bytes=0, recent_captures_bytes=0)  # a video's frames are each made once
    export.check_mixing(renderer, [base])  # slerp-z frames take base's mixing: check it before frame 1
    warn_if_transform_ignored(renderer, base)
    cols = 1
    if args.sweep:
        sequences = [export.sweep_requests(renderer, base, args.sweep, args.frames, args.sweep_from,
                                           args.sweep_to, args.sweep_width, args.loop)]
        total = len(sequences[0])
    else:
        if bool(args.seeds) == bool(args.keyframes):
            raise ValueError("video: give --seeds or --keyframes (or --sweep)")
        items = export.parse_seeds(args.seeds) if args.seeds else [k.strip() for k in args.keyframes.split(",") if k.strip()]
        cell_items = [items]
        if args.grid:
            if not args.seeds:
                raise ValueError("--grid: a grid video takes --seeds")
            rows, cols = export.parse_grid_shape(args.grid)
            cell_items = export.grid_cell_keyframes(items, rows * cols)
        sequences = []
        for cell in cell_items:
            keyframes = [export.keyframe_request(base, item) for item in cell]
            sequences.append(export.interpolation_requests(renderer, base, keyframes, args.frames_per_transition,
                                                           args.interp, args.loop, args.easing))
        total = interpolate.frame_count(len(cell_items[0]), args.frames_per_transition, args.loop)
    bar, progress = _tqdm_progress(total, "frame")
    try:
        if args.workers is not None or args.ray:
            from renderer import batch

            with _pool(args, base) as pool:
                batch.export_video(pool, sequences, args.out, fps=args.fps, quality=args.quality, cols=cols,
                                   total=total, progress=progress, pixel_format=args.pixel_format)
        else:
            export.export_video(renderer, sequences, args.out, fps=args.fps, quality=args.quality, cols=cols,
                                total=total, progress=progress, pixel_format=args.pixel_format)
    finally:
        bar.close()
    print(f"wrote {args.out} ({total} frame{'' if total == 1 else 's'} at {args.fps:g} fps)")
    return 0


def cmd_grid(args):
    """Render a seed grid (--seeds, --grid RxC) or a style-mixing grid (--rows, --cols, --mix) to a PNG."""
    from renderer import export
    from renderer.renderer import Renderer

    export.check_padding(args.padding)
    export.check_png_name(args.out)
    base = _base_request(args)
    headless_threads()
    renderer = Renderer(recent_frames_bytes=0, recent_captures_bytes=0)  # a grid's cells are each made once
    if args.rows or args.cols:
        if not (args.rows and args.cols):
            raise ValueError("grid: a style-mixing grid needs both --rows and --cols")
        row_seeds, col_seeds = export.parse_seeds(args.rows), export.parse_seeds(args.cols)
        layers = _mix_layers(args.mix, dataclasses.replace(base, mix_layers=()), renderer)
        cells = export.style_mix_requests(base, row_seeds, col_seeds, layers)
        rows, cols, kind = len(row_seeds) + 1, len(col_seeds) + 1, f"style-mix {args.mix}"
    else:
        if not args.seeds:
            raise ValueError("grid: give --seeds (a seed grid) or --rows and --cols (a style-mixing grid)")
        seeds = export.parse_seeds(args.seeds)
        rows, cols = export.parse_grid_shape(args.grid) if args.grid else (1, len(seeds))
        if len(seeds) > rows * cols:
            raise ValueError(f"--grid: {len(seeds)} seeds do not fit {rows}x{cols}")
        cells, kind = export.seed_grid_requests(base, seeds), "seeds"
    export.check_mixing(renderer, cells.values() if isinstance(cells, dict) else cells)
    warn_if_transform_ignored(renderer, base)
    bar, progress = _tqdm_progress(len(cells), "cell")
    try:
        if args.workers is not None or args.ray:
            from renderer import batch

            with _pool(args, base) as pool:
                image = batch.export_grid(pool, cells, rows, cols, args.out, base, kind, args.padding, progress)
        else:
            image = export.export_grid(renderer, cells, rows, cols, args.out, base, kind, padding=args.padding,
                                       progress=progress)
    finally:
        bar.close()
    print(f"wrote {args.out} ({rows}x{cols} {kind} grid, {image.shape[1]}x{image.shape[0]})")
    return 0


def cmd_drag(args):
    """Drag points on a frame; write the result's PNG and W+ (renderer/drag_cli.py)."""
    from renderer.drag_cli import cmd_drag as run
    from renderer.renderer import Renderer

    request = request_from_args(args)
    headless_threads()
    return run(args, request, Renderer())


def cmd_convert(args):
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


def cmd_project(args):
    """Project a picture into W / W+ and write projected_w.npz (plus a PNG and a video if asked)."""
    from renderer.project_command import run_project_command

    headless_threads()
    return run_project_command(args)


def cmd_gui(args):
    """No command: open the explorer window."""
    try:
        from app.main import run_app
    except ModuleNotFoundError as exc:
        if exc.name in ("app.main", "app"):
            print("stylescope: the window is not built yet (app/main.py is missing)", file=sys.stderr)
        else:
            print(f"stylescope: cannot open the window: {exc}", file=sys.stderr)
        return 2
    args.start_request = window_request(args)
    return run_app(args)


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop like Ctrl+C (an export kills ffmpeg and leaves no partial file)."""


def _raise_terminated(signum, frame):
    raise Terminated()
def window_request(args):
    """The request the window starts from when request flags are given (--session is their base,
    as --request is for `frame`), else None: the window's defaults."""
    given = [action.dest for action in build_parser()._actions
             if action.dest not in ("pkl", "device", "session", "help", "command")
             and getattr(args, action.dest, None) is not None]
    if not given:
        return None
    plain = argparse.Namespace(**vars(args))
    plain.request = getattr(args, "request", None) or getattr(args, "session", None)
    return request_from_args(plain)


def main(argv=None):
    import signal

    from models import runtime

    runtime.short_openmp_waits()  # before anything loads torch
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", cmd_gui)
    if func is not cmd_gui:  # the window handles its own closing
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        from models.errors import LoadError

        return func(args) or 0
    except (LoadError, *USER_ERRORS) as exc:
        print(f"stylescope: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (RecursionError, MemoryError, OverflowError) as exc:  # a file's doing: still one line
        print(f"stylescope: the input is too large or too deeply nested ({type(exc).__name__})", file=sys.stderr)
        return 1
    except Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 130


def _one_line(exc):
    """One printable line: control characters from a file escaped, long values cut."""
    from models.errors import error_line

    return error_line(exc)


if __name__ == "__main__":
    sys.exit(main())
