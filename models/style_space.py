"""StyleSpace: the style vectors s (each style layer's affine output) of a synthesis network, and offsets added to them."""

import torch


def style_layers(synthesis):
    """[(layer name, affine, w index)] of the network's style layers (its style_affines(); none for a
    network without that method)."""
    found = getattr(synthesis, "style_affines", None)
    return found() if found is not None else []


def style_channels(synthesis):
    """{layer name: number of style channels} in pass order."""
    return {name: affine.out_features for name, affine, _ in style_layers(synthesis)}


def set_style_offsets(synthesis, offsets):
    """Every later pass adds offsets[name] (a tensor [channels]) to that layer's styles, and nothing
    to the layers not named. Offsets are replaced, never written into: the block cache keeps
    references to them to compare with the next pass's."""
    layers = style_layers(synthesis)
    known = {name for name, _, _ in layers}
    unknown = sorted(set(offsets) - known)
    if unknown:
        sample = ", ".join(name for name, _, _ in layers[:4])
        raise ValueError(f"style_offsets: no style layer named {unknown[0]!r} in this network (e.g. {sample} ...)")
    for name, affine, _ in layers:
        offset = offsets.get(name)
        if offset is not None and (offset.ndim != 1 or offset.shape[0] != affine.out_features):
            raise ValueError(f"style_offsets: layer {name} has {affine.out_features} style channels, "
                             f"got an offset of shape {list(offset.shape)}")
        affine.output_offset = offset


def style_offset_of(layer):
    """The offset a style layer's affine adds now (None: none): what the block cache compares."""
    affine = getattr(layer, "affine", None)
    return getattr(affine, "output_offset", None)


def offsets_from_channels(synthesis, channel_deltas, device="cpu"):
    """{layer: offset tensor} from ((layer name, channel, delta), ...); ValueError for a channel
    outside the layer's styles (unknown layers are refused by set_style_offsets)."""
    channels = style_channels(synthesis)
    offsets = {}
    for name, channel, delta in channel_deltas:
        count = channels.get(name)
        if count is None:
            offsets.setdefault(name, torch.zeros(1))  # set_style_offsets names it
            continue
        if not 0 <= channel < count:
            raise ValueError(f"style_offsets: channel {channel} is outside 0-{count - 1} of layer {name}")
        offset = offsets.setdefault(name, torch.zeros(count, dtype=torch.float32, device=device))
        offset[channel] += float(delta)
    return offsets


def styles_of_rows(affine, w):
    """One style layer's styles [N, channels] for w rows [N, w_dim], without any offset set on it."""
    styles = affine(w.to(torch.float32))
    return styles if affine.output_offset is None else styles - affine.output_offset


def styles_of(synthesis, ws):
    """{layer name: styles [N, channels]} that ws [N, num_ws, w_dim] give each style layer (the
    affines only: no synthesis pass). Offsets set on the network are not included."""
    return {name: styles_of_rows(affine, ws[:, index]) for name, affine, index in style_layers(synthesis)}


def affine_matrix(affine):
    """A style affine's weight as it acts, [channels, w_dim] float32 (its weight gain applied)."""
    return affine.weight.detach().to(torch.float32) * float(affine.weight_gain)
