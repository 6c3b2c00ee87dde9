"""How much a network uses its noise inputs: the mean change of the image when one layer's noise is switched off."""

import dataclasses

import numpy as np

# Mean change, in levels of 255, under which switching all noise off goes unseen.
BARELY_LEVELS = 1.0
CLEARLY_LEVELS = 4.0


def usage_base(request):
    """The request the measurement starts from: the image (no layer view, no resize) with its learned
    noise as it is (const, strength 1 everywhere)."""
    return dataclasses.replace(request, layer=None, channel_mode="rgb", fft=False, gain_db=0.0, normalize="none",
                               output_scale=1.0, noise_mode="const", noise_strength=1.0, noise_layer_strength={})


def mean_change(renderer, base, reference, **changes):
    """Mean |image - reference| in levels of 255 for the base request with `changes`."""
    frame = renderer.render(dataclasses.replace(base, **changes))
    if frame.error:
        raise ValueError(frame.error)
    return float(np.abs(frame.image.astype(np.float32) - reference).mean())


def reference_image(renderer, base):
    frame = renderer.render(base)
    if frame.error:
        raise ValueError(frame.error)
    return frame.image.astype(np.float32)


def layer_usage(renderer, request, layer):
    """Mean change (levels of 255) of the request's image when `layer`'s noise is off; layer None:
    every layer's (noise mode none). Each is one render on the renderer's thread; the block cache
    makes a fine layer's a partial one."""
    base = usage_base(request)
    reference = reference_image(renderer, base)
    if layer is None:
        return mean_change(renderer, base, reference, noise_mode="none")
    return mean_change(renderer, base, reference, noise_layer_strength={layer: 0.0})


def usage_summary(all_off_levels):
    """One plain sentence on how much the network uses noise, from the change with all of it off."""
    amount = f"all noise off changes the image by {all_off_levels:.1f}/255 on average"
    if all_off_levels < BARELY_LEVELS:
        return f"This network barely uses its noise inputs ({amount}): the noise controls change little."
    if all_off_levels < CLEARLY_LEVELS:
        return f"This network uses its noise a little ({amount}): fine texture."
    return f"This network uses its noise clearly ({amount})."
