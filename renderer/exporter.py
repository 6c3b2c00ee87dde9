"""The window's exports: each kind as work(renderer, progress, cancel), run as an ExportJob by an Exporter with its own Renderer."""

from renderer import directions, export_jobs, grids, interpolate, png_metadata, sequences


class Exporter:
    """Runs export work on a Renderer of its own: the interactive worker's is never shared across
    threads. The Renderer is kept, so that a network loads once for all exports."""

    def __init__(self, device="auto", load=None):
        self.device = device
        self.load = load
        self._renderer = None

    def renderer(self):
        from renderer.renderer import Renderer

        if self._renderer is None:
            # Exported frames are seldom made twice: nothing kept for going back.
            self._renderer = Renderer(device=self.device, recent_frames_bytes=0, recent_captures_bytes=0,
                                      load=self.load)
        return self._renderer

    def start(self, description, work):
        """An ExportJob (started) running work(renderer, progress, cancel) on its own thread."""
        job = export_jobs.ExportJob(description, lambda progress, cancel: work(self.renderer(), progress, cancel))
        return job.start()


def frame_work(request, path, save_latents=False, image=None):
    """The frame as PNG with its request (and w, z); `image` is the frame on screen when it is this request's."""
    def work(renderer, progress, cancel):
        return png_metadata.export_frame(renderer, request, path, save_latents=save_latents, image=image)

    return work


def keyframe_items(text, base):
    """Keyframes typed in the panel: seeds (ints) and file paths; empty means four seeds from the current."""
    text = (text or "").strip()
    if not text:
        first = base.seeds[0][0]
        return [first + k for k in range(4)]
    items = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.replace("-", "").isdigit():
            items.extend(grids.parse_seeds(part))
        else:
            items.append(part)
    return items


def video_work(base, keys_text, grid_text, per, loop, interp, easing, path, fps, quality):
    """(work, frame count): a video through the keyframes, one cell each of a grid of seeds."""
    items = keyframe_items(keys_text, base)
    rows, cols = grids.parse_grid_shape(grid_text or "1x1")
    if rows * cols > 1:
        if not all(isinstance(item, int) for item in items):
            raise ValueError("a grid video takes seeds as keyframes")
        cells = sequences.grid_cell_keyframes(items, rows * cols)
    else:
        cells = [items]
    total = interpolate.frame_count(len(cells[0]), per, loop)

    def work(renderer, progress, cancel):
        per_cell = sequences.cell_interpolations(renderer, base, cells, per, interp, loop, easing)
        return sequences.export_video(renderer, per_cell, path, fps=fps, quality=quality, cols=cols, total=total,
                                      progress=progress, cancel=cancel)

    return work, total


def sweep_work(base, control, frames, loop, path, fps, quality):
    """A video of one control swept around the request (sequences.sweep_requests)."""
    def work(renderer, progress, cancel):
        requests = sequences.sweep_requests(renderer, base, control, frames, loop=loop)
        return sequences.export_video(renderer, [requests], path, fps=fps, quality=quality, total=len(requests),
                                      progress=progress, cancel=cancel)

    return work


def seed_grid_work(base, seeds_text, shape_text, path):
    """A PNG grid of seeds; ValueError now when they do not fit the shape."""
    seeds = grids.parse_seeds(seeds_text)
    rows, cols = grids.parse_grid_shape(shape_text)
    if len(seeds) > rows * cols:
        raise ValueError(f"{len(seeds)} seeds do not fit a {rows}x{cols} grid")
    cells = grids.seed_grid_requests(base, seeds)

    def work(renderer, progress, cancel):
        grids.export_grid(renderer, cells, rows, cols, path, base, "seeds", progress=progress, cancel=cancel)
        return path

    return work


def mix_grid_work(base, rows_text, cols_text, group, layers, path):
    """A PNG style-mixing grid: row seeds' `layers` (w indices of the named group) from the column seeds."""
    row_seeds, col_seeds = grids.parse_seeds(rows_text), grids.parse_seeds(cols_text)
    cells = grids.style_mix_requests(base, row_seeds, col_seeds, layers)
    rows, cols = len(row_seeds) + 1, len(col_seeds) + 1

    def work(renderer, progress, cancel):
        grids.export_grid(renderer, cells, rows, cols, path, base, f"style-mix {group}", progress=progress,
                           cancel=cancel)
        return path

    return work


def direction_sweep_work(request, path, frames, fps, quality):
    """A video of request's edits (its directions and StyleSpace channels) scaled from -1 to 1
    (the export's `direction` sweep)."""
    return sweep_work(request, "direction", frames, False, path, fps, quality)


def direction_grid_work(request, seeds_text, steps, path):
    """A PNG grid, one row per seed, its columns request's edits scaled from -1 to 1 (the figure of
    the SeFa, StyleSpace and InterFaceGAN papers)."""
    seeds = grids.parse_seeds(seeds_text)
    cells = directions.sweep_grid_requests(request, seeds, steps)

    def work(renderer, progress, cancel):
        grids.export_grid(renderer, cells, len(seeds), steps, path, request, "direction sweep", progress=progress,
                           cancel=cancel)
        return path

    return work
