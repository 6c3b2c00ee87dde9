"""Point dragging on the image (DragGAN, Pan et al. 2023): motion supervision and point tracking in W+.

Each step runs the synthesis network only up to its feature stage (models/stages.py picks it: the
6th block, or the deepest at most half the image's size), with autograd on the first ws only:
    tracking:  p_i <- argmin over q in the (2 r2 + 1)^2 window around p_i of |F(q) - F0(p_i^0)|_1
    motion:    L = sum_i mean over q in the disk(p_i, r1) of |sg(F(q)) - F(q + d_i)|_1
                   + lambda * mean(|F - F0| * (1 - M)),     d_i = (t_i - p_i) / |t_i - p_i|
F is the feature map read bilinearly at image coordinates (the map resized to the image's size,
without making the resized map), sg the stop-gradient, F0 the first step's features, M the mask
(1 where the image may change). An Adam step on the first ws follows; the rest of W+ stays fixed.
The stages after the feature stage run only for a shown frame, from the step's own features.
"""

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models import stages
from renderer.display import image_to_uint8

# Reference values at 512 px (DragGAN's defaults: r1 3, r2 12, Adam 2e-3 for faces, the first 6 ws);
# the radii grow with larger images. Below 512 px r1 stays 3 px and r2 at least 6 px: on the 64 px
# default model a 1 px disk leaves the mouth's features smeared sideways (tracking runs ahead of
# the picture) and a 3 px window is outrun by a step.
REFERENCE_SIZE = 512
MOTION_RADIUS = 3
TRACK_RADIUS = 12
MIN_TRACK_RADIUS = 6


@dataclass(frozen=True)
class DragSettings:
    steps: int = 200  # step budget
    optimised_ws: int = 6  # the first ws of W+ that move; the rest stay fixed
    lr: float = 2e-3
    stop_distance: float = 1.0  # pixels: done when every handle is this close to its target
    motion_radius: float | None = None  # r1 in image pixels (None: 3, scaled up above 512 px)
    track_radius: int | None = None  # r2 in image pixels (None: 12 at 512 px, scaled; at least 6)
    mask_weight: float = 3.0  # lambda of the mask term (docs/drag.md: 10 held the default model still)
    feature_stage: int | None = None  # None: models.stages.feature_stage
    track_patch: float | None = None  # radius of the feature patch tracking compares (None: r1; 0: one point)
    track_stage: int | None = None  # a later stage to track handles on (None: the feature stage)


def _points(name, values, size):
    """[(x, y), ...] within the image as a float tensor [N, 2]; a clear error otherwise."""
    points = torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32).reshape(-1, 2)
    if not torch.isfinite(points).all():
        raise ValueError(f"{name}: not a finite pixel position")
    if ((points < 0) | (points > size - 1)).any():
        raise ValueError(f"{name}: outside the {size}x{size} image")
    return points


def sample(features, points, size):
    """Features [C, K] at image positions points [K, 2] (x, y; pixel centres at integers) of a
    size x size image: bilinear reading of the map stretched over the image, as F.interpolate's
    bilinear resize (align_corners=False) then a bilinear read would give at whole pixels."""
    grid = (2 * points + 1) / size - 1
    out = F.grid_sample(features, grid.view(1, 1, -1, 2).to(features.dtype), mode="bilinear",
                        padding_mode="border", align_corners=False)
    return out[0, :, 0]


def _offsets(radius, disk):
    """Integer (dx, dy) offsets within `radius`: a disk, or the square window."""
    r = int(math.floor(radius))
    steps = torch.arange(-r, r + 1, dtype=torch.float32)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    offsets = torch.stack([dx.flatten(), dy.flatten()], dim=1)
    if disk:
        offsets = offsets[(offsets ** 2).sum(dim=1) <= radius ** 2 + 1e-6]
    return offsets


class DragSession:
    """One drag: handles pulled toward targets by optimising the first ws. step() until done."""

    def __init__(self, G, ws, handles, targets, mask=None, settings=DragSettings(), noise_mode="const",
                 noise_strength=1.0, noise_seed=0, force_fp32=True):
        self.G = G
        self.settings = settings
        self.size = int(G.img_resolution)
        ws = torch.as_tensor(ws, dtype=torch.float32).to(G.mapping.w_avg.device).detach()
        if ws.ndim != 3 or ws.shape[0] != 1:
            raise ValueError(f"drag: ws must be [1, num_ws, w_dim], got {list(ws.shape)}")
        self.handles = _points("handle", handles, self.size)
        self.targets = _points("target", targets, self.size)
        if len(self.handles) == 0 or len(self.handles) != len(self.targets):
            raise ValueError("drag: give one target per handle (at least one pair)")
        self.start_handles = self.handles.clone()
        self.mask = None
        if mask is not None:
            mask = torch.as_tensor(np.asarray(mask, dtype=np.float32))
            if mask.shape != (self.size, self.size):
                raise ValueError(f"drag: the mask must be {self.size}x{self.size}, not {tuple(mask.shape)}")
            self.mask = mask.view(1, 1, self.size, self.size)
        self._pass_kwargs = dict(noise_mode=noise_mode, noise_strength=noise_strength, force_fp32=force_fp32)
        self._noise_seed = noise_seed
        count = min(settings.optimised_ws, ws.shape[1])
        self._fixed = ws[:, count:]
        self._moving = ws[:, :count].clone().requires_grad_(True)
        self._optimizer = torch.optim.Adam([self._moving], lr=settings.lr)
        scale = self.size / REFERENCE_SIZE
        r1 = settings.motion_radius or MOTION_RADIUS * max(1.0, scale)
        r2 = settings.track_radius or max(MIN_TRACK_RADIUS, round(TRACK_RADIUS * scale))
        self._motion_offsets = _offsets(r1, disk=True)
        self._track_offsets = _offsets(r2, disk=False)
        self._track_patch = _offsets(settings.track_patch if settings.track_patch is not None else r1, disk=True)
        synthesis = G.synthesis
        with torch.no_grad():
            self.stage = settings.feature_stage
            if self.stage is None:
                self.stage = stages.feature_stage(synthesis, self.size, ws, **self._kwargs())
        self.stage_count = len(stages.stage_resolutions(synthesis, ws, **self._kwargs()))
        self.steps_done = 0
        self.done = False
        self.ws = ws  # the ws of the last pass (its features gave the handles)
        self._carry = None  # that pass's stages up to the feature stage, detached, with its noise generator
        self._reference = None  # (F0 features [1, C, h, w], F0 at the first handles [C, N])
        self.step_seconds = None  # mean time of a step so far

    def _kwargs(self):
        """Synthesis settings of one pass; random noise restarts from its seed in each."""
        kwargs = dict(self._pass_kwargs)
        if kwargs["noise_mode"] == "random":
            kwargs["noise_generator"] = torch.Generator().manual_seed(int(self._noise_seed))
        return kwargs

    def distances(self):
        """Each handle's distance to its target, in pixels."""
        return (self.targets - self.handles).norm(dim=1)

    def step(self):
        """One pass up to the feature stage, tracking, and (unless done) one optimiser step.
        Returns whether the drag is done (all handles within stop_distance, or the budget spent)."""
        with torch.enable_grad():  # also where the caller runs without (the render worker)
            return self._step()

    def _step(self):
        if self.done:
            return True
        start = time.perf_counter()
        ws = torch.cat([self._moving, self._fixed], dim=1)
        kwargs = self._kwargs()
        # Unfused modulation (styles scale the activations around a plain convolution): the
        # backward then needs no weight gradient of each convolution to reach the styles.
        carry = stages.run_stages(self.G.synthesis, ws, 0, self.stage + 1, fused_modconv=False, **kwargs)
        features = carry[0]
        if features.dtype != torch.float32:
            features = features.float()
        self.ws = ws.detach().clone()
        self._carry = (tuple(c.detach() if isinstance(c, torch.Tensor) else c for c in carry), kwargs, self.stage)
        tracked = self._tracking_features(features)
        if self._reference is None:
            around = (self.start_handles[:, None, :] + self._track_patch[None]).reshape(-1, 2)
            self._reference = (features.detach(), sample(tracked, around.clamp(0, self.size - 1), self.size))
        else:
            self.handles = self._track(tracked)
        near = self.distances() <= self.settings.stop_distance
        if bool(near.all()) or self.steps_done >= self.settings.steps:
            self.done = True
        else:
            loss = self._loss(features, near)
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._optimizer.step()
            self.steps_done += 1
        seconds = time.perf_counter() - start
        self.step_seconds = seconds if self.step_seconds is None else 0.8 * self.step_seconds + 0.2 * seconds
        return self.done

    def _tracking_features(self, features):
        """The features handles are tracked on: the feature stage's, or a later stage's (run from
        the step's carry without autograd; the shown frame then continues from there)."""
        track_stage = self.settings.track_stage
        if track_stage is None or track_stage <= self.stage:
            return features.detach()
        carry, kwargs, _ = self._carry
        with torch.no_grad():
            carry = stages.run_stages(self.G.synthesis, self.ws, self.stage + 1, track_stage + 1, carry=carry,
                                      **kwargs)
        self._carry = (carry, kwargs, track_stage)
        return carry[0].float()

    def _track(self, features):
        """Each handle moved to the window position whose neighbourhood (the motion disk) has
        features nearest to F0's around its first place (a single feature vector is ambiguous
        along edges such as a mouth, and a drag's smeared features fool it)."""
        _, first = self._reference
        patch = len(self._track_patch)
        moved = []
        for index, handle in enumerate(self.handles):
            candidates = (handle.round() + self._track_offsets).clamp(0, self.size - 1)
            points = (candidates[:, None, :] + self._track_patch[None]).reshape(-1, 2).clamp(0, self.size - 1)
            found = sample(features, points, self.size).view(-1, len(candidates), patch)
            wanted = first[:, index * patch:(index + 1) * patch]
            distance = (found - wanted[:, None, :]).abs().mean(dim=(0, 2))
            moved.append(candidates[int(distance.argmin())])
        return torch.stack(moved)

    def _loss(self, features, near):
        """Motion supervision for the handles not yet near their targets, plus the mask term."""
        loss = features.new_zeros(())
        for index, handle in enumerate(self.handles):
            if near[index]:
                continue
            direction = self.targets[index] - handle
            direction = direction / direction.norm()
            points = (handle + self._motion_offsets).clamp(0, self.size - 1)
            here = sample(features, points, self.size).detach()
            ahead = sample(features, points + direction, self.size)
            loss = loss + (ahead - here).abs().mean()
        if self.mask is not None and self.settings.mask_weight > 0:
            reference, _ = self._reference
            keep = 1 - F.adaptive_avg_pool2d(self.mask, features.shape[-2:])
            loss = loss + self.settings.mask_weight * ((features - reference).abs() * keep).mean()
        return loss

    def image(self):
        """The image of the last pass [1, C, H, W]: the stages after the feature stage, from its carry."""
        carry, kwargs, stage = self._carry
        with torch.no_grad():
            if stage + 1 < self.stage_count:
                carry = stages.run_stages(self.G.synthesis, self.ws, stage + 1, self.stage_count, carry=carry,
                                          **kwargs)
        return carry[1]

    def frame_every(self, image_seconds):
        """Steps between shown frames: as few as keep the frames (the stages after the feature
        stage) to about a third of the time, so the picture keeps moving and the drag keeps going."""
        return max(1, math.ceil(2 * image_seconds / max(self.step_seconds or 1e-3, 1e-3)))


def w_plus(ws):
    """ws as the projected_w layout [1, num_ws, w_dim], float32 numpy."""
    return ws.detach().cpu().to(torch.float32).numpy().reshape(1, ws.shape[-2], ws.shape[-1])


def session_for(renderer, request, handles, targets, mask=None, settings=DragSettings()):
    """A DragSession starting from the picture `request` shows (its ws and noise settings)."""
    if request.layer is not None:
        raise ValueError("drag: show the image, not a layer view")
    _, G = renderer.load(request)
    return DragSession(G, renderer.compute_ws(request), handles, targets, mask=mask, settings=settings,
                       **renderer.synthesis_settings(request))


def result_request(request, ws):
    """`request` with the drag's ws as its latent (W+, used as is): every other control applies to it."""
    return dataclasses.replace(request, w=w_plus(ws)[0].astype(np.float64), z=None, seed_xy=None, mix_seed=None,
                               mix_w=None, mix_layers=(), w_offset=None)


def frame_of(session):
    """The session's current picture, uint8 [H, W, 3]."""
    return image_to_uint8(session.image())[0].cpu().numpy()


def run_drag(session, on_frame=None, should_stop=None):
    """Step until done or should_stop(); on_frame(image, session) gets a frame every few steps
    (DragSession.frame_every) and the last one. Returns the session (stopped early or done)."""
    every, last_shown = 1, -1
    while True:
        done = session.step()
        stopped = not done and should_stop is not None and should_stop()
        if on_frame is not None and (done or stopped or session.steps_done - last_shown >= every):
            start = time.perf_counter()
            on_frame(frame_of(session), session)
            every = session.frame_every(time.perf_counter() - start)
            last_shown = session.steps_done
        if done or stopped:
            return session


class DragVideo:
    """The frames a drag shows, written to an MP4 (or GIF) that appears whole or not at all."""

    def __init__(self, path, fps=15):
        from renderer import export_jobs, video

        self.path = path
        video.video_format(path)  # an unknown suffix fails before the drag runs
        self._files = contextlib.ExitStack()
        self._writer = video.VideoWriter(self._files.enter_context(export_jobs.atomic_output(path)), fps=fps,
                                         fmt=video.video_format(path))

    def append(self, image, _session=None):
        self._writer.append(image)

    def close(self):
        """Finish the file (kept); abort() instead leaves no file."""
        try:
            self._writer.close()
        except BaseException:
            self.abort()
            raise
        self._files.close()

    def abort(self):
        self._writer.abort()
        self._files.__exit__(RuntimeError, RuntimeError("drag video abandoned"), None)


def drag_job(request, handles, targets, mask=None, settings=DragSettings(), video_path=None):
    """fn(renderer, job) for RenderWorker.start_job: drags from `request`'s picture, posting
    (image uint8 [H, W, 3], tracked handles [[x, y], ...], steps done) for each shown frame, and
    stops early when job.stopped(). Returns {'ws': [num_ws, w_dim] float64, 'handles', 'steps',
    'reached', 'video'}: the result so far also when stopped."""

    def run(renderer, job):
        session = session_for(renderer, request, handles, targets, mask=mask, settings=settings)
        recorder = DragVideo(video_path) if video_path else None

        def shown(image, current):
            job.post((image, current.handles.tolist(), current.steps_done))
            if recorder is not None:
                recorder.append(image)

        try:
            run_drag(session, on_frame=shown, should_stop=job.stopped)
        except BaseException:
            if recorder is not None:
                recorder.abort()
            raise
        if recorder is not None:
            recorder.close()
        return dict(ws=w_plus(session.ws)[0].astype(np.float64), handles=session.handles.tolist(),
                    steps=session.steps_done, reached=bool((session.distances() <= settings.stop_distance).all()),
                    video=video_path)

    return run
