"""The `project` command: a picture -> NVIDIA's projected_w.npz (+ a PNG, a progress video), with a progress bar."""

import dataclasses
import sys

from renderer.projection import (ProjectionSettings, Projector, load_target_image, prepare_target, progress_frames,
                                 save_projected_w)


def settings_from_args(args):
    """ProjectionSettings from the command's flags (a weight left out keeps its default; --vgg turns VGG on)."""
    changes = dict(space=args.space, steps=args.steps, seed=args.seed)
    for name in ("pixel", "msssim", "discriminator", "vgg"):
        value = getattr(args, f"{name}_weight", None)
        if value is not None:
            changes[name] = value
    if getattr(args, "vgg", None) and getattr(args, "vgg_weight", None) is None:
        changes["vgg"] = 1.0
    return ProjectionSettings(**changes)


def feature_networks(model_path, vgg_path, settings):
    """{'discriminator': fn, 'vgg': fn} for the terms the settings weigh (None where there is no such network)."""
    nets = {}
    if settings.discriminator > 0:
        from models.loader import load_discriminator

        D = load_discriminator(model_path)
        nets["discriminator"] = D.features if D is not None else None
        if D is None:
            print("stylescope: warning: this network file has no discriminator; its loss term is left out",
                  file=sys.stderr)
    if settings.vgg > 0:
        if not vgg_path:
            raise ValueError("--vgg-weight needs --vgg FILE (VGG16 weights)")
        from models.vgg import load_vgg16

        nets["vgg"] = load_vgg16(vgg_path).features_for_distance
    return nets


def run_project_command(args):
    from tqdm import tqdm

    from models.atomic_write import WriteError, write_problem
    from renderer import export_jobs, png_metadata, sequences
    from renderer.renderer import Renderer
    from renderer.request import RenderRequest

    for path in (args.out, args.out_png, args.video):
        problem = path and write_problem(path)
        if problem:
            raise WriteError(problem)
    if args.out_png:
        png_metadata.check_png_name(args.out_png)
    settings = settings_from_args(args)
    renderer = Renderer()
    base = RenderRequest(pkl=getattr(args, "pkl", None), device=getattr(args, "device", "auto"), noise_mode="const")
    _, G = renderer.load(base)
    nets = feature_networks(export_jobs.model_path_of(base), getattr(args, "vgg", None), settings)
    picture = load_target_image(args.target)
    target, (left, top, size) = prepare_target(picture, G.img_resolution, G.img_channels)
    print(f"target: {args.target} {picture.shape[1]}x{picture.shape[0]}, centre square {size}x{size} at "
          f"({left}, {top}) resized to {G.img_resolution}x{G.img_resolution}", file=sys.stderr)
    projector = Projector(G, target, settings, feature_nets=nets)

    bar = tqdm(total=settings.steps, unit="step", file=sys.stderr)

    def on_step(p):
        bar.update(1)
        bar.set_postfix(loss=f"{p.loss:.4f}")

    try:
        if args.video:
            sequences.write_video(progress_frames(projector, on_step=on_step), args.video, fps=30)
        else:
            while not projector.done:
                projector.step()
                on_step(projector)
    finally:
        bar.close()
    ws = projector.ws()[0].numpy()
    save_projected_w(ws[None], args.out)
    written = [args.out] + [p for p in (args.video,) if p]
    if args.out_png:
        request = dataclasses.replace(base, w=ws.tolist())
        png_metadata.export_frame(renderer, request, args.out_png)
        written.append(args.out_png)
    print(f"wrote {', '.join(map(str, written))} ({settings.space}, {settings.steps} steps, loss {projector.loss:.4f})")
    return 0
