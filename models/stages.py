"""Partial synthesis passes for any family: run the stages up to one, then (maybe) the rest.

StyleGAN2 and v1 synthesis networks define stage_resolutions() and run_stages(); any other network
with checkpoint_stages() (StyleGAN3) is run whole, with a forward hook that stops the pass after the
stage asked for, so that autograd still sees only the stages that ran.
"""

import torch

# DragGAN takes the 6th synthesis block's output (Pan et al. 2023): a quarter of the image at
# 512 px, an eighth at 1024. Networks whose 6th stage is finer than a quarter of the image (256 px
# and less) take the deepest stage at most a quarter of the image, but not coarser than 32 px
# (or half the image, for images under 64 px): tracking needs that many cells, and on a 256 px
# network b64 instead of b128 halves the share of the network a step runs and differentiates.
DRAG_FEATURE_STAGE = 5
MIN_FEATURE_SIZE = 32


class _Stop(Exception):
    """Raised by the hook that ends a hooked partial pass."""


def stage_resolutions(synthesis, ws=None, **kwargs):
    """The spatial size of each stage's output, in pass order."""
    if hasattr(synthesis, "stage_resolutions"):
        return synthesis.stage_resolutions()
    sizes = []
    hooks = [stage.register_forward_hook(lambda _m, _i, out: sizes.append(int(out.shape[-1])))
             for stage in synthesis.checkpoint_stages()]
    try:
        with torch.no_grad():
            synthesis(ws, **kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


def feature_stage(synthesis, img_resolution, ws=None, **kwargs):
    """The stage whose output a drag supervises and tracks on (see DRAG_FEATURE_STAGE)."""
    sizes = stage_resolutions(synthesis, ws, **kwargs)[:-1] or [0]
    limit = max(img_resolution // 4, min(MIN_FEATURE_SIZE, img_resolution // 2))
    if DRAG_FEATURE_STAGE < len(sizes) and sizes[DRAG_FEATURE_STAGE] <= limit:
        return DRAG_FEATURE_STAGE
    fitting = [i for i, size in enumerate(sizes) if size <= limit]
    return max(fitting, default=0)


def run_stages(synthesis, ws, start, stop, carry=None, **kwargs):
    """Stages start..stop-1 from `carry` (what run_stages returned for the stages before; None
    for start 0) -> the new carry, whose first item is the features after stage stop-1 and whose
    second, after the last stage, is the image."""
    if hasattr(synthesis, "run_stages"):
        return synthesis.run_stages(ws, start, stop, carry=carry, **kwargs)
    stages = synthesis.checkpoint_stages()
    if stop >= len(stages):  # the rest: a whole pass (no entry point in the middle)
        img = synthesis(ws, **kwargs)
        return img, img
    kept = []

    def grab(_module, _inputs, output):
        kept.append(output)
        raise _Stop()

    hook = stages[stop - 1].register_forward_hook(grab)
    try:
        synthesis(ws, **kwargs)
    except _Stop:
        pass
    finally:
        hook.remove()
    return kept[0], None
