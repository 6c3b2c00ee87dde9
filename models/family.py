"""The family interface: what differs between StyleGAN v1, 2 and 3, answered by the network object itself.

Each generator class (models/stylegan1.py, stylegan2.py, stylegan3.py; the rosinality and TF
loaders build StyleGAN2's) declares, at the top of the class:

- preview_kind: how a quick low-resolution frame is made. 'accumulated' (skip StyleGAN2: the
  image accumulates block by block, block b{R} holds it at R px), 'level_torgb' (StyleGAN v1: each level's
  progressive-growing ToRGB turns block b{R}'s output into an image), 'reduced' (orig/resnet
  StyleGAN2 and StyleGAN3: reduced_preview, a cheaper pass of the whole network), or None.
- cache_kind: how models/block_cache.py reuses a pass. 'blocks' (StyleGAN2: whole blocks whose
  inputs did not change; one layer's noise can be prepared for a drag), 'stages' (StyleGAN3, v1:
  checkpoints chosen by estimated cost), or None.
- reduced_preview(ws, resolution, **options): for preview_kind 'reduced', the image of that pass
  at reduced_resolution(G, resolution) px.
- reduced_preview_cap(): optional, the largest reduced preview worth its cost (px).
- set_input_transform(translate, rotate_deg, scale): optional, the network's input transform
  (StyleGAN3's); networks without one have nothing to set.

The functions below read these, with the answer for a network that declares nothing (a stand-in,
a plain module): no preview, no block cache kind, no input transform.
"""


def preview_kind(G):
    return getattr(G, "preview_kind", None)


def cache_kind(G):
    return getattr(G, "cache_kind", None)


def reduced_resolution(G, resolution):
    """The size a reduced preview asked for `resolution` px renders at: at most half the image's,
    and at most what the network's reduced_preview_cap says."""
    resolution = min(int(resolution), G.img_resolution // 2)
    cap = getattr(G, "reduced_preview_cap", None)
    return resolution if cap is None else min(resolution, cap())


def set_input_transform(G, translate, rotate_deg, scale):
    """Set the network's input transform where it has one (StyleGAN3); others: nothing to do."""
    setter = getattr(G, "set_input_transform", None)
    if setter is not None:
        setter(translate, rotate_deg, scale)


def has_input_transform(G):
    return getattr(G, "set_input_transform", None) is not None


def noise_layers(G):
    """Synthesis layers with a learned noise strength (names relative to G.synthesis)."""
    suffix = ".noise_strength"
    return [key[: -len(suffix)] for key in G.synthesis.state_dict() if key.endswith(suffix)]
