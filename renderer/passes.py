"""The synthesis passes a frame is made by: the full image (recent frames, block cache), a layer's capture, the preview image, the layer list."""

import contextlib

import torch

from models import family


class CaptureDone(Exception):
    """Raised from a forward hook to stop the pass once the wanted layer has run."""


def synthesize(G, ws, **kwargs):
    """The one place the synthesis network runs."""
    return G.synthesis(ws, **kwargs)


def full_image(session, ws, kwargs, inputs, recall=True):
    """(the plain full image, whether it was a recent frame): a recent frame of the same inputs
    as it was made, else a pass re-using the blocks whose inputs did not change since the last one.

    Hooks of re-used blocks do not fire, so layer discovery and previews run without the block
    cache (captures use BlockCache.capturing). Families without a block cache ignore the
    argument. inputs: the request's frame_key (None: nothing kept or recalled)."""
    G = session.G
    if not session.block_cache_lock.acquire(blocking=False):
        with recording_layers(session):
            return synthesize(G, ws, **kwargs), False
    try:
        image = session.recent.get(inputs) if recall and session.layers is not None else None
        if image is not None:  # (without a layer list, a pass records it)
            return image, True
        cache = session.block_cache
        if session.layers is None:
            cache.clear()  # every block must run, so that the recording hooks see every layer
        with recording_layers(session):  # the layer list comes free with a full pass
            image = synthesize(G, ws, block_cache=cache, **kwargs)
        session.recent.put(inputs, image)
        return image, False
    finally:
        session.block_cache_lock.release()


def discover_layers(session, ws, request):
    """The layer list of a network: known, or found by one full synthesis pass."""
    if session.layers is None:
        session.set_inside(request)
        with recording_layers(session):
            synthesize(session.G, ws, noise_mode="const", force_fp32=True)
    return session.layers


@contextlib.contextmanager
def recording_layers(session):
    """Hooks every synthesis submodule during the pass inside; stores the 4-D outputs
    [(name, shape, resolution)] in call order, unless the session knows its list. A pass that
    stops early (cancelled, failed) stores nothing: its list would lack the later layers."""
    if session.layers is not None:
        yield
        return
    names = {module: name for name, module in session.G.synthesis.named_modules() if name}
    found = {}

    def record(module, _inputs, output):
        tensor = first_tensor(output)
        if tensor is not None and tensor.ndim == 4 and names[module] not in found:
            found[names[module]] = (tuple(tensor.shape), int(tensor.shape[-1]))

    handles = [module.register_forward_hook(record) for module in names]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
    session.layers = [(name, shape, res) for name, (shape, res) in found.items()]


def layer_output(session, ws, kwargs, inputs, layer_name, recall=True):
    """(the layer's output, whether it came without a pass): another view of the same capture
    (channels, scaling, FFT) needs no pass. inputs: the request's frame_key."""
    capture_key = None if inputs is None else inputs + (layer_name,)
    tensor = session.captures.get(capture_key) if recall else None
    if tensor is not None:
        return tensor, True
    tensor, kept = _capture(session, ws, kwargs, layer_module(session.G, layer_name, session.layers), recall)
    if tensor is None:
        raise ValueError(f"layer: {layer_name!r} produced no tensor output")
    if not kept:  # what the block cache holds stays there
        session.captures.put(capture_key, tensor)
    return tensor, kept


def _capture(session, ws, kwargs, module, recall=True):
    """(`module`'s output for these inputs, whether the block cache held it): a pass through
    the network's block cache stopped at the module, where the cache does not hold that output
    already (recall). What comes before the module's block (StyleGAN2) or stage (StyleGAN3,
    v1) and is unchanged since the last pass is reused; what the pass computes on the way is
    kept for the next one."""
    G, output = session.G, None
    if session.block_cache_lock.acquire(blocking=False):
        try:
            cache = session.block_cache
            kept = cache.kept_output(G.synthesis, ws, module, **cache_settings(kwargs)) if recall else None
            if kept is not None:
                return kept, True
            with cache.capturing(module):
                output = run_until(module, G, ws, dict(kwargs, block_cache=cache))
        finally:
            session.block_cache_lock.release()
    if output is None:  # another thread holds the cache, or the cached pass did not reach the layer
        output = run_until(module, G, ws, kwargs)
    return first_tensor(output), False


def run_until(module, G, ws, kwargs):
    """Run synthesis until `module` has produced its output, stop the pass there, return it."""
    captured = []

    def grab(_module, _inputs, output):
        captured.append(output)
        raise CaptureDone

    handle = module.register_forward_hook(grab)
    try:
        synthesize(G, ws, **kwargs)
    except CaptureDone:
        pass
    finally:
        handle.remove()
    return captured[0] if captured else None


def preview_image(G, ws, kwargs, resolution):
    """The network's own low-resolution image at block b{resolution}, then stop: for skip
    StyleGAN2 the image accumulated so far, for StyleGAN (v1) that level's progressive-growing
    ToRGB applied to the block's output. Kind "reduced": the network's reduced_preview (models/family.py)."""
    kind = family.preview_kind(G)
    if kind == "reduced":
        options = {name: kwargs[name] for name in ("noise_mode", "noise_strength", "noise_generator", "should_stop")
                   if name in kwargs}
        return G.reduced_preview(ws, resolution, **options)
    blocks = [int(n[1:]) for n, _ in G.synthesis.named_children() if n[:1] == "b" and n[1:].isdigit()]
    usable = [r for r in blocks if r <= resolution and r < G.img_resolution] or blocks[:1]
    block = G.synthesis.get_submodule(f"b{max(usable)}")
    output = run_until(block, G, ws, kwargs)
    if kind == "accumulated":
        return output[1]  # a skip block returns (features, image so far)
    return block.torgb(output)


def layer_module(G, layer_name, layers):
    """The synthesis submodule a layer name (as the layer list gives it) names; a readable error else."""
    name = layer_name[len("synthesis."):] if layer_name.startswith("synthesis.") else layer_name
    try:
        return G.synthesis.get_submodule(name)
    except AttributeError:
        valid = [n for n, _, _ in layers or []]
        sample = ", ".join(valid[:3] + valid[-3:]) if len(valid) > 6 else ", ".join(valid)
        raise ValueError(f"layer: no layer named {layer_name!r} in this network (e.g. {sample})") from None


def cache_settings(kwargs):
    """The synthesis settings the block cache compares besides the ws."""
    return {name: kwargs[name] for name in ("noise_mode", "noise_strength", "force_fp32", "noise_generator")
            if name in kwargs}


def first_tensor(output):
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    return None
