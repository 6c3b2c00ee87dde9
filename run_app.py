"""StyleScope command line: open the explorer window, or run a headless command (renderer/commands.py,
renderer/export_commands.py), each building its request from the flags below."""

import argparse
import dataclasses
import sys

from renderer import commands, export_commands
from renderer.drag_cli import add_drag_arguments

# Errors that are the user's input, not our bug: one line on stderr, no traceback.
USER_ERRORS = (ValueError, OSError)

# (name, help, takes the request flags, its own flags, run(args, request_from_args)), in the help's order.
COMMANDS = (
    ("info", "print what a network file holds, as JSON", False, None, commands.cmd_info),
    ("frame", "render one frame to a PNG", True, commands.add_frame_arguments, commands.cmd_frame),
    ("video", "render an interpolation video, a sweep or a grid video (MP4 or GIF)", True,
     export_commands.add_video_arguments, export_commands.cmd_video),
    ("grid", "render a seed grid or a style-mixing grid to a PNG", True,
     export_commands.add_grid_arguments, export_commands.cmd_grid),
    ("drag", "drag handle points to targets (DragGAN) headless", True, add_drag_arguments, commands.cmd_drag),
    ("batch", "render one image per seed into a folder (resumable; --workers/--ray)", True,
     export_commands.add_batch_arguments, export_commands.cmd_batch),
    ("directions", "write SeFa directions or a direction learned from labelled seeds (.npy)", False,
     commands.add_directions_arguments, commands.cmd_directions),
    ("convert", "turn a network pickle into a safe .safetensors file (no code inside)", False,
     commands.add_convert_arguments, commands.cmd_convert),
    ("project", "find the w (or W+) of a picture: writes NVIDIA's projected_w.npz", False,
     commands.add_project_arguments, commands.cmd_project),
)


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
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text, takes_request, add_arguments, run in COMMANDS:
        # conflict_handler: video, grid and batch's --seeds is a seed list, not add_request_arguments' blend.
        command = subcommands.add_parser(name, parents=[common], conflict_handler="resolve", help=help_text)
        if takes_request:
            add_request_arguments(command)
        if add_arguments is not None:
            add_arguments(command)
        command.set_defaults(func=run)
    return parser


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
        unmixed = dataclasses.replace(base, **{**changes, "mix_layers": ()})
        changes["mix_layers"] = commands.mix_layers_from_text(changes["mix_layers"], unmixed)
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
    from models.latent_files import read_w

    try:
        return {"w": read_w(args.w_file)}
    except ValueError as error:
        raise ValueError(f"--w: {error}") from None


def _direction_offset(items):
    """The sum of STRENGTH x direction over --direction FILE=STRENGTH items: the request's w_offset."""
    from renderer.latent_files import load_direction
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


def cmd_gui(args, _build_request):
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

        return func(args, request_from_args) or 0
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
