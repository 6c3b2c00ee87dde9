"""BlockCache: a StyleGAN2 pass re-renders from the first block (layer) whose inputs changed.

A block's output is decided by its own inputs (its ws rows, the noise settings of its layers) and
by every earlier block's. The cache keeps, per block, what went in and what came out; a pass
compares block by block, reuses outputs up to the first difference and recomputes from there,
dropping every later entry, so that nothing kept was computed from an upstream that is gone.
A block whose convolution inputs are unchanged but whose ToRGB w changed (NVIDIA's layout shares
that w with the next block's conv0) recomputes only its image.

The layer a pass starts recomputing at also leaves its convolution output before noise behind
(one layer's worth, the fast path only): a noise-strength change there, the next step of the same
drag, then skips that layer's convolution and redoes only its noise, lrelu and clamp.

StyleGAN3 and StyleGAN v1 keep stage inputs instead: models/stage_cache.py.

Usage (the caller owns one cache per loaded network; G.synthesis.new_cache() makes the right kind):
    cache = BlockCache()
    img = G.synthesis(ws, noise_mode="const", block_cache=cache)   # same pixels as without it
"""

import contextlib

import torch

from models import fast_stylegan2
from models.cache_keys import cacheable, generator_state, holds, same
from models.style_space import style_offset_of


def _noise_signature(layer, noise_mode, noise_strength):
    """What of the noise settings decides one layer's output."""
    if not getattr(layer, "use_noise", False) or noise_mode == "none":
        return None
    if isinstance(noise_strength, dict):
        return noise_mode, float(noise_strength.get(layer.layer_name, 1.0))
    return noise_mode, float(noise_strength)


def _conv_layers(block):
    """The block's modulated conv layers in call order."""
    return [getattr(block, name) for name in ("conv0", "conv1") if hasattr(block, name)]


class _Entry:
    """One block's inputs and outputs from the last pass that ran it."""

    def __init__(self, conv_inputs, torgb_w, x, img, x_mid):
        self.conv_inputs = conv_inputs  # per conv layer: (ws row, noise signature); then the settings
        self.torgb_w = torgb_w
        self.x = x
        self.img = img
        self.x_mid = x_mid  # conv0's output, so a change that starts at conv1 reruns conv1 only


class _PreNoise:
    """One layer's convolution output before noise, with what decided it: the layer's (w row, style
    offset) and its input tensor (held, so that identity means the very same upstream values)."""

    def __init__(self, res, layer_index, w, source, y):
        self.res = res
        self.layer_index = layer_index  # 0: conv0, 1: conv1
        self.w = w
        self.source = source
        self.y = y

    def fits(self, res, layer_index, w, source):
        return (self.res == res and self.layer_index == layer_index and self.source is source
                and same(self.w, w))


class BlockCache:
    """Per-block outputs of the last synthesis passes of one network (batch 1)."""

    def __init__(self, keep_layer_outputs=True):
        """keep_layer_outputs: also keep each block's conv0 output (about doubles the memory, 1024 px:
        ~270 -> ~540 MB) so that a change starting at a conv1 layer reruns that layer, not the block,
        and the pre-noise output of the layer the last pass started at (up to 134 MB more)."""
        self.keep_layer_outputs = keep_layer_outputs
        self.entries = {}  # block resolution -> _Entry
        self.pre_noise = None  # _PreNoise of the layer the last pass started recomputing at
        self.blocks_run = 0  # blocks recomputed in the last pass (for tests and benchmarks)
        self.layers_run = 0  # blocks rerun from conv1 (conv0's output reused) in the last pass
        self.images_run = 0  # blocks whose image alone was recomputed in the last pass
        self.convs_skipped = 0  # layers whose convolution came from pre_noise in the last pass
        self.blocks_seen = 0  # blocks the last pass reached (a capture stops inside one)
        self.must_run = None  # a module the pass must run even where its inputs are unchanged (capturing)
        self._network = None

    @contextlib.contextmanager
    def capturing(self, module):
        """Passes inside run `module` (its forward hooks fire: a layer capture) and reuse only what
        comes before it: the block or stage holding it is recomputed even when nothing that decides
        it changed. What a pass recomputes that way equals what was kept, so nothing is dropped for it."""
        self.must_run = module
        try:
            yield
        finally:
            self.must_run = None

    def clear(self):
        """Forget everything (the caller changed weights, say)."""
        self.entries.clear()
        self.pre_noise = None

    def reused(self):
        """How many blocks the last pass took from the cache."""
        return max(self.blocks_seen - self.blocks_run, 0)

    def applies(self, ws, noise_mode, noise_generator):
        """Batch 1 only, and random noise only when it comes from a generator (reproducible)."""
        return cacheable(ws, noise_mode, noise_generator)

    def block_runner(self, synthesis, force_fp32=True, fused_modconv=None, noise_mode="const",
                     noise_strength=1.0, noise_generator=None):
        """For one pass of synthesis.run_blocks: run_block(res, block, x, img, its ws) -> (x, img),
        reusing what is kept up to the first block whose inputs changed and keeping what it computes
        from there. The pass gives the same image as without a cache."""
        if self._network is not synthesis:
            self.clear()
            self._network = synthesis
        settings = _settings(force_fp32, fused_modconv, noise_mode, noise_generator)
        layer_kwargs = dict(noise_mode=noise_mode, noise_strength=noise_strength, noise_generator=noise_generator)
        self.blocks_run = self.images_run = self.layers_run = self.convs_skipped = self.blocks_seen = 0
        self._reusing = True  # until the first block whose inputs changed

        def run_block(res, block, x, img, cur_ws):
            return self._block(res, block, x, img, cur_ws, settings, force_fp32, fused_modconv, layer_kwargs)
        return run_block

    def _block(self, res, block, x, img, cur_ws, settings, force_fp32, fused_modconv, layer_kwargs):
        """One block of a cached pass: its kept outputs, or as little of it recomputed as its changed inputs need."""
        noise_mode, noise_strength = layer_kwargs["noise_mode"], layer_kwargs["noise_strength"]
        noise_generator = layer_kwargs["noise_generator"]
        self.blocks_seen += 1
        forced = holds(block, self.must_run)  # a capture's block: its layers run
        layers = _conv_layers(block)
        conv_inputs, torgb_w = _block_inputs(block, cur_ws, settings, noise_mode, noise_strength)
        entry = self.entries.get(res) if self._reusing else None
        fast = block.runs_fast(cur_ws, force_fp32)
        fused = block._fused_modconv(fused_modconv, torch.float32, 1)
        x_mid = None

        if entry is not None and same(entry.conv_inputs, conv_inputs) and same(entry.torgb_w, torgb_w):
            if forced:  # run for its hooks; the outputs equal the kept ones
                self.blocks_run += 1
                block(x, img, cur_ws, force_fp32=force_fp32, fused_modconv=fused_modconv, **layer_kwargs)
            else:
                _skip_noise_draws(layers, cur_ws, noise_mode, noise_strength, noise_generator)
            return entry.x, entry.img  # nothing that decides this block changed
        if self._reusing:
            self._drop_from(res)  # later entries were computed from what is about to change
            self._reusing = False

        if forced:
            entry = None  # the shortcuts below skip some of the block's layers: run it whole
        if entry is not None and same(entry.conv_inputs, conv_inputs):
            # Only the ToRGB w changed: x stands, the image is recomputed from the previous one.
            _skip_noise_draws(layers, cur_ws, noise_mode, noise_strength, noise_generator)
            x, x_mid = entry.x, entry.x_mid
            img = block.image_step(x, img, torgb_w, fused_modconv=fused, fast=fast)
            self.images_run += 1
        elif (entry is not None and entry.x_mid is not None and len(layers) == 2
              and same(entry.conv_inputs[0], conv_inputs[0]) and same(entry.conv_inputs[2], conv_inputs[2])):
            # conv0 unchanged (a mixing range or a noise strength that starts at conv1): rerun from conv1.
            _skip_noise_draws(layers[:1], cur_ws, noise_mode, noise_strength, noise_generator)
            x_mid = entry.x_mid
            x = self._starting_layer(res, 1, block.conv1, x_mid, cur_ws[:, 1], fused, layer_kwargs)
            img = block.image_step(x, img, torgb_w, fused_modconv=fused, fast=fast)
            self.layers_run += 1
        elif (entry is not None and len(layers) == 2 and block.architecture != "resnet"
              and same(entry.conv_inputs[2], conv_inputs[2])):
            # The block's input stands and conv0 changed: conv0 is the layer this pass starts at.
            self.blocks_run += 1
            x_mid = self._starting_layer(res, 0, block.conv0, block.layer_input(x, cur_ws, force_fp32),
                                         cur_ws[:, 0], fused, layer_kwargs, source=x)
            x = block.conv1(x_mid, cur_ws[:, 1], fused_modconv=fused, **layer_kwargs)
            img = block.image_step(x, img, torgb_w, fused_modconv=fused, fast=fast)
            x_mid = x_mid if self.keep_layer_outputs else None
        else:
            self.blocks_run += 1  # counted first: a capture may stop inside the block
            x_mid, x, img = self._run_block(block, x, img, cur_ws, force_fp32, fused_modconv, layer_kwargs)
        self.entries[res] = _Entry(_detached(conv_inputs), None if torgb_w is None else torgb_w.clone(), x, img,
                                   x_mid)
        return x, img

    def rerun_from(self, synthesis, ws, noise_mode="const", noise_strength=1.0, force_fp32=True,
                   fused_modconv=None, noise_generator=None):
        """The resolution of the first block a pass with these inputs would (partly) recompute, or
        None when it would come entirely from the cache. Lets a renderer skip a low-resolution
        preview when only fine layers changed (the cached re-render is then the quick frame)."""
        if self._network is not synthesis or not self.applies(ws, noise_mode, noise_generator):
            return synthesis.block_resolutions[0]
        settings = _settings(force_fp32, fused_modconv, noise_mode, noise_generator)
        for res, block, cur_ws in synthesis.blocks(ws):
            conv_inputs, torgb_w = _block_inputs(block, cur_ws, settings, noise_mode, noise_strength)
            entry = self.entries.get(res)
            if entry is None or not (same(entry.conv_inputs, conv_inputs) and same(entry.torgb_w, torgb_w)):
                return res
        return None

    def prepare_noise_drag(self, synthesis, ws, layer, noise_mode="const", noise_strength=1.0, force_fp32=True,
                           fused_modconv=None, noise_generator=None):
        """Before a drag of one layer's noise strength starts (the mouse is over its slider): compute
        that layer's convolution output before noise from the kept outputs upstream and keep it
        as the next pass would, so that the drag's first step already skips the layer's
        convolution, as its later steps do (StyleGAN2-1024, b512.conv0: 53% -> 42% of a frame).
        Only where the cache holds the pass of exactly these inputs (the image on screen), the
        layer has noise and the fast path runs it. True when the output is kept (now or already)."""
        if noise_mode == "none" or not getattr(layer, "use_noise", False):
            return False  # its strength changes nothing
        if (self._network is not synthesis or not self.keep_layer_outputs
                or not self.applies(ws, noise_mode, noise_generator)
                or self.rerun_from(synthesis, ws, noise_mode=noise_mode, noise_strength=noise_strength,
                                   force_fp32=force_fp32, fused_modconv=fused_modconv,
                                   noise_generator=noise_generator) is not None):
            return False
        previous = None
        for res, block, cur_ws in synthesis.blocks(ws):
            layers = _conv_layers(block)
            if layer in layers:
                break
            previous = self.entries[res]
        else:
            return False
        index = layers.index(layer)
        entry = self.entries[res]
        # Where a pass changing this layer's noise would start (run): conv1 from the kept conv0
        # output; conv0 from the block's input, outside resnet blocks.
        if index == 1 and entry.x_mid is not None:
            x = source = entry.x_mid
        elif index == 0 and len(layers) == 2 and block.architecture != "resnet" and previous is not None:
            source = previous.x
            x = block.layer_input(source, cur_ws, force_fp32)
        else:
            return False
        w = cur_ws[:, index]
        if not (layer.fast and fast_stylegan2.usable(x, w, layer) and fast_stylegan2.layer_usable(layer)):
            return False
        kept = self.pre_noise
        styled_by = (w.clone(), style_offset_of(layer))
        if kept is not None and kept.fits(res, index, styled_by, source):
            return True
        self.pre_noise = None  # free the old one before the new one is made
        self.pre_noise = _PreNoise(res, index, styled_by, source, fast_stylegan2.layer_before_noise(layer, x, w))
        return True

    def kept_output(self, synthesis, ws, module, **settings):
        """What `module` output in the last pass, where the cache holds it and nothing that decides
        it changed since; else None. A layer view of the image on screen then needs no pass.
        A block's features, its conv0's output and, outside resnet blocks, its conv1's (the
        block's features). settings: as rerun_from takes them."""
        if self._network is not synthesis:
            return None
        res = next((r for r in synthesis.block_resolutions if holds(getattr(synthesis, f"b{r}"), module)), None)
        entry = self.entries.get(res)
        if entry is None:
            return None
        changed = self.rerun_from(synthesis, ws, **settings)
        if changed is not None and changed <= res:
            return None
        block = getattr(synthesis, f"b{res}")
        if module is block or (module is getattr(block, "conv1", None) and block.architecture != "resnet"):
            return entry.x
        if module is getattr(block, "conv0", None):
            return entry.x_mid
        return None

    def _starting_layer(self, res, layer_index, layer, x, w, fused, layer_kwargs, source=None):
        """The first layer a pass recomputes: from the kept pre-noise output when only its noise
        changed since, else in full, keeping its pre-noise output for the next step (fast path only)."""
        source = x if source is None else source
        fast = (self.keep_layer_outputs and layer.fast and fast_stylegan2.usable(x, w, layer)
                and fast_stylegan2.layer_usable(layer))
        if not fast:
            return layer(x, w, fused_modconv=fused, **layer_kwargs)
        noise = layer._noise(x, layer_kwargs["noise_mode"], layer_kwargs["noise_strength"],
                             layer_kwargs["noise_generator"])
        kept = self.pre_noise
        styled_by = (w, style_offset_of(layer))
        if kept is not None and kept.fits(res, layer_index, styled_by, source):
            self.convs_skipped += 1
        else:
            self.pre_noise = None  # free the old one before the new one is made
            kept = _PreNoise(res, layer_index, (w.clone(), styled_by[1]), source,
                             fast_stylegan2.layer_before_noise(layer, x, w))
            self.pre_noise = kept
        # The same arithmetic as the layer's forward, into a new tensor: the kept one stays as it is.
        return fast_stylegan2.layer_epilogue(layer, kept.y, noise, keep_input=True)

    def _run_block(self, block, x, img, cur_ws, force_fp32, fused_modconv, layer_kwargs):
        """A whole block, keeping conv0's output on the way where conv1 can be rerun from it alone."""
        keep_mid = self.keep_layer_outputs and hasattr(block, "conv0") and block.architecture != "resnet"
        captured = []
        handle = block.conv0.register_forward_hook(lambda _m, _i, out: captured.append(out)) if keep_mid else None
        try:
            x, img = block(x, img, cur_ws, force_fp32=force_fp32, fused_modconv=fused_modconv, **layer_kwargs)
        finally:
            if handle is not None:
                handle.remove()
        return (captured[0] if captured else None), x, img

    def _drop_from(self, res):
        """Forget this block and every later one: they were computed from the upstream now replaced."""
        for key in [k for k in self.entries if k >= res]:
            del self.entries[key]

    def rerender_growth(self):
        """Bytes by which a StyleGAN2 re-render can grow the heap past what the cache and a frame
        have held so far: the dragged layer's kept pre-noise output, the new output written from
        it and, for a drag that starts at conv0, its transposed convolution's output before the
        filter, each the size of the largest kept block output (measured at 1024 px: 2 of them
        left a drag's second step faulting 116 MB)."""
        if not self.keep_layer_outputs:
            return 0
        sizes = [entry.x.numel() * entry.x.element_size() for entry in self.entries.values() if entry.x is not None]
        return 3 * max(sizes, default=0)

    def nbytes(self):
        """Memory the kept outputs take."""
        tensors = [t for entry in self.entries.values() for t in (entry.x, entry.img, entry.x_mid)]
        tensors += [self.pre_noise.y] if self.pre_noise is not None else []
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _settings(force_fp32, fused_modconv, noise_mode, noise_generator):
    """What decides every block alike."""
    return (noise_mode, bool(force_fp32), fused_modconv,
            generator_state(noise_generator) if noise_mode == "random" else None)


def _block_inputs(block, cur_ws, settings, noise_mode, noise_strength):
    """((ws row, noise signature, style offset) per conv layer + (settings, fast), ToRGB w or None) for one block."""
    layers = _conv_layers(block)
    has_torgb = block.is_last or block.architecture == "skip"
    torgb_w = cur_ws[:, len(layers)] if has_torgb else None
    conv_inputs = tuple((cur_ws[:, i], _noise_signature(layer, noise_mode, noise_strength), style_offset_of(layer))
                        for i, layer in enumerate(layers))
    conv_inputs += ((settings, bool(getattr(block, "fast", False))),)
    return conv_inputs, torgb_w


def _detached(conv_inputs):
    """A private copy of the ws rows (the caller may reuse its tensor)."""
    return tuple((w.clone(), noise, offset) for w, noise, offset in conv_inputs[:-1]) + conv_inputs[-1:]


def _skip_noise_draws(layers, cur_ws, noise_mode, noise_strength, noise_generator):
    """Advance the noise generator as the skipped layers would have, so later layers draw the same noise."""
    if noise_mode != "random" or noise_generator is None:
        return
    for layer in layers:
        layer._noise(cur_ws, noise_mode, noise_strength, noise_generator)
