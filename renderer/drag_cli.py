"""The `drag` command: drag handle points to targets headless; writes the PNG, the W+ and a video.

Only numpy at import: run_app.py builds its parser before torch may load."""

import numpy as np


def add_drag_arguments(parser):
    """Flags of the drag command (the request flags give the starting picture)."""
    add = parser.add_argument
    add("--handle", action="append", required=True, metavar="X,Y",
        help="a handle point in output-image pixels (repeatable; one --target each, in order)")
    add("--target", action="append", required=True, metavar="X,Y", help="where the handle should go")
    add("--mask", metavar="M.png", help="image-sized mask: white where the picture may change, black kept")
    add("--steps", type=int, help="step budget (default: renderer/drag.py DragSettings.steps, 200)")
    add("--out", required=True, help="PNG file to write (the result, re-rendered as `frame --w` renders it)")
    add("--out-w", required=True, metavar="W.npz", help="the result's W+ ('w', [1, num_ws, w_dim])")
    add("--video", metavar="drag.mp4", help="also record the drag's frames (.mp4 or .gif)")


def _point(flag, text):
    parts = text.split(",")
    try:
        x, y = (float(part) for part in parts)
    except ValueError:
        raise ValueError(f"{flag}: expected X,Y in pixels, got {text!r}") from None
    return x, y


def _mask(path, size):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mask = np.asarray(image.convert("L"), dtype=np.float32) / 255
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ValueError(f"--mask: {path}: not a readable image ({str(error).splitlines()[0]})") from None
    if mask.shape != (size, size):
        raise ValueError(f"--mask: {path} is {mask.shape[1]}x{mask.shape[0]}; the image is {size}x{size}")
    return (mask >= 0.5).astype(np.float32)


def cmd_drag(args, request, renderer):
    """Run the drag; print where each handle ended. Returns 0."""
    from renderer import export_jobs, png_metadata
    from renderer.drag import DragSettings, DragVideo, result_request, run_drag, session_for, w_plus

    if len(args.handle) != len(args.target):
        raise ValueError(f"give one --target per --handle ({len(args.handle)} handles, {len(args.target)} targets)")
    settings = DragSettings() if args.steps is None else DragSettings(steps=args.steps)
    if settings.steps < 0:
        raise ValueError("--steps: must be 0 or more")
    png_metadata.check_png_name(args.out)
    if not str(args.out_w).lower().endswith(".npz"):
        raise ValueError(f"--out-w: {args.out_w}: use a .npz name")
    handles = [_point("--handle", text) for text in args.handle]
    targets = [_point("--target", text) for text in args.target]
    _, G = renderer.load(request)
    size = int(G.img_resolution)
    if request.output_scale != 1:  # coordinates are the output image's
        scale = request.output_scale
        handles = [(x / scale, y / scale) for x, y in handles]
        targets = [(x / scale, y / scale) for x, y in targets]
    mask = _mask(args.mask, round(size * request.output_scale)) if args.mask else None
    if mask is not None and request.output_scale != 1:
        from PIL import Image

        mask = (np.asarray(Image.fromarray(mask * 255).convert("L").resize((size, size))) >= 128).astype(np.float32)
    session = session_for(renderer, request, handles, targets, mask=mask, settings=settings)
    recorder = DragVideo(args.video) if args.video else None
    try:
        run_drag(session, on_frame=recorder.append if recorder else None)
        result = result_request(request, session.ws)
        frame = renderer.render(result)
        if frame.error:
            raise ValueError(frame.error)
        if recorder:
            recorder.close()
    except BaseException:
        if recorder:
            recorder.abort()
        raise
    with export_jobs.atomic_output(args.out_w) as name:
        with open(name, "wb") as handle:
            np.savez(handle, w=w_plus(session.ws))
    png_metadata.export_frame(renderer, result, args.out, image=frame.image)
    scale = request.output_scale
    for index, (handle, target) in enumerate(zip(session.handles.tolist(), session.targets.tolist())):
        print(f"handle {index}: ended at {handle[0] * scale:g},{handle[1] * scale:g} "
              f"(target {target[0] * scale:g},{target[1] * scale:g})")
    written = [args.out, args.out_w] + ([args.video] if args.video else [])
    print(f"wrote {', '.join(map(str, written))} ({session.steps_done} steps)")
    return 0
