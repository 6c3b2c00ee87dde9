"""Headless export commands of run_app.py: video (interpolation, sweeps, grid videos), grid (seed and
style-mixing grids) and batch (one picture per seed), on this process or on Ray workers."""

import dataclasses

from renderer import commands


def add_video_arguments(parser):
    """Flags of the video command (the request flags give the base frame)."""
    from renderer.interpolate import EASINGS, INTERPOLATIONS
    from renderer.sequences import SWEEP_CONTROLS  # numpy only: the parser stays quick to build

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
    add_pool_arguments(parser)


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
    add_pool_arguments(parser)


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
    """The render pool --workers / --ray ask for (this process when neither is given)."""
    from renderer.distributed import open_pool

    return open_pool(request, args.workers, args.ray, renderer)


def cmd_batch(args, build_request):
    """Render one image file per seed into a folder; a rerun renders only the missing ones."""
    from renderer import batch, grids

    given = [flag for flag, name in (("--seed", "seed"), ("--seed-xy", "seed_xy"), ("--w", "w_file"))
             if getattr(args, name, None) is not None]
    if given:
        raise ValueError(f"batch: {given[0]} does not apply; the seeds come from --seeds A-B")
    seeds = batch.parse_batch_seeds(args.seeds)
    grid = grids.parse_grid_shape(args.grid) if args.grid else None
    base = commands.base_request(args, build_request)
    commands.headless_threads()
    from renderer.renderer import Renderer

    renderer = Renderer(recent_frames_bytes=0, recent_captures_bytes=0)
    grids.check_mixing(renderer, [base])
    commands.warn_if_transform_ignored(renderer, base)
    batch.prepare_folder(base, seeds, args.out, args.format, grid, args.seeds)  # before workers start
    with _pool(args, base, renderer) as pool:
        bar, progress = commands.tqdm_progress(len(seeds), "image")
        try:
            result = batch.run_batch(pool, base, seeds, args.out, args.format, grid, args.seeds, progress)
        finally:
            bar.close()
    sheets = f", {len(result.sheets)} contact sheets" if grid else ""
    print(f"wrote {len(result.written)} images to {args.out} ({len(result.skipped)} were there){sheets}")
    return 0


def cmd_video(args, build_request):
    """Render keyframe interpolation, a sweep of one control, or a grid video to MP4 / GIF."""
    from renderer import grids, interpolate, sequences
    from renderer.renderer import Renderer
    from renderer.video import check_video_settings, video_format

    # Settings the writer would refuse, refused before the first frame is rendered, not after.
    check_video_settings(args.fps, args.quality)
    video_format(args.out)
    base = commands.base_request(args, build_request)
    commands.headless_threads()
    renderer = Renderer(recent_frames_bytes=0, recent_captures_bytes=0)  # a video's frames are each made once
    grids.check_mixing(renderer, [base])  # slerp-z frames take base's mixing: check it before frame 1
    commands.warn_if_transform_ignored(renderer, base)
    cols = 1
    if args.sweep:
        request_sequences = [sequences.sweep_requests(renderer, base, args.sweep, args.frames, args.sweep_from,
                                                      args.sweep_to, args.sweep_width, args.loop)]
        total = len(request_sequences[0])
    else:
        if bool(args.seeds) == bool(args.keyframes):
            raise ValueError("video: give --seeds or --keyframes (or --sweep)")
        items = (grids.parse_seeds(args.seeds) if args.seeds
                 else [k.strip() for k in args.keyframes.split(",") if k.strip()])
        cell_items = [items]
        if args.grid:
            if not args.seeds:
                raise ValueError("--grid: a grid video takes --seeds")
            rows, cols = grids.parse_grid_shape(args.grid)
            cell_items = sequences.grid_cell_keyframes(items, rows * cols)
        request_sequences = sequences.cell_interpolations(renderer, base, cell_items, args.frames_per_transition,
                                                          args.interp, args.loop, args.easing)
        total = interpolate.frame_count(len(cell_items[0]), args.frames_per_transition, args.loop)
    bar, progress = commands.tqdm_progress(total, "frame")
    try:
        if args.workers is not None or args.ray:
            from renderer import batch

            with _pool(args, base) as pool:
                batch.export_video(pool, request_sequences, args.out, fps=args.fps, quality=args.quality, cols=cols,
                                   total=total, progress=progress, pixel_format=args.pixel_format)
        else:
            sequences.export_video(renderer, request_sequences, args.out, fps=args.fps, quality=args.quality,
                                   cols=cols, total=total, progress=progress, pixel_format=args.pixel_format)
    finally:
        bar.close()
    print(f"wrote {args.out} ({total} frame{'' if total == 1 else 's'} at {args.fps:g} fps)")
    return 0


def cmd_grid(args, build_request):
    """Render a seed grid (--seeds, --grid RxC) or a style-mixing grid (--rows, --cols, --mix) to a PNG."""
    from renderer import grids, png_metadata
    from renderer.renderer import Renderer

    grids.check_padding(args.padding)
    png_metadata.check_png_name(args.out)
    base = commands.base_request(args, build_request)
    commands.headless_threads()
    renderer = Renderer(recent_frames_bytes=0, recent_captures_bytes=0)  # a grid's cells are each made once
    if args.rows or args.cols:
        if not (args.rows and args.cols):
            raise ValueError("grid: a style-mixing grid needs both --rows and --cols")
        row_seeds, col_seeds = grids.parse_seeds(args.rows), grids.parse_seeds(args.cols)
        layers = commands.mix_layers_from_text(args.mix, dataclasses.replace(base, mix_layers=()), renderer)
        cells = grids.style_mix_requests(base, row_seeds, col_seeds, layers)
        rows, cols, kind = len(row_seeds) + 1, len(col_seeds) + 1, f"style-mix {args.mix}"
    else:
        if not args.seeds:
            raise ValueError("grid: give --seeds (a seed grid) or --rows and --cols (a style-mixing grid)")
        seeds = grids.parse_seeds(args.seeds)
        rows, cols = grids.parse_grid_shape(args.grid) if args.grid else (1, len(seeds))
        if len(seeds) > rows * cols:
            raise ValueError(f"--grid: {len(seeds)} seeds do not fit {rows}x{cols}")
        cells, kind = grids.seed_grid_requests(base, seeds), "seeds"
    grids.check_mixing(renderer, cells.values() if isinstance(cells, dict) else cells)
    commands.warn_if_transform_ignored(renderer, base)
    bar, progress = commands.tqdm_progress(len(cells), "cell")
    try:
        if args.workers is not None or args.ray:
            from renderer import batch

            with _pool(args, base) as pool:
                image = batch.export_grid(pool, cells, rows, cols, args.out, base, kind, args.padding, progress)
        else:
            image = grids.export_grid(renderer, cells, rows, cols, args.out, base, kind, padding=args.padding,
                                      progress=progress)
    finally:
        bar.close()
    print(f"wrote {args.out} ({rows}x{cols} {kind} grid, {image.shape[1]}x{image.shape[0]})")
    return 0
