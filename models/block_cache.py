"""BlockCache: re-render a synthesis pass from the first block (layer) whose inputs changed.

A block's output is decided by its own inputs (its ws rows, the noise settings of its layers) and
by every earlier block's. The cache keeps, per block, what went in and what came out; a pass
compares block by block, reuses outputs up to the first difference and recomputes from there,
dropping every later entry, so that nothing kept was computed from an upstream that is gone.
A block whose convolution inputs are unchanged but whose ToRGB w changed (NVIDIA's layout shares
that w with the next block's conv0) recomputes only its image.

The layer a pass starts recomputing at also leaves its convolution output before noise behind
(one layer's worth, the fast path only): a noise-strength change there, the next step of the same
drag, then skips that layer's convolution and redoes only its noise, lrelu and clamp.

StyleGAN3 (layers) and StyleGAN v1 (blocks) have no image built up beside the features, so one
stage's output is all the next one needs: LayerCheckpoints keeps the inputs of a few stages within
a memory budget, and a pass starts at the last one whose upstream is unchanged.

Usage (the caller owns one cache per loaded network):
    cache = BlockCache()
    img = G.synthesis(ws, noise_mode="const", block_cache=cache)   # same pixels as without it
"""

import contextlib

import torch

from models import fast_stylegan2, ops
from models.errors import RenderCancelled
from models.style_space import style_offset_of

# StyleGAN3 layer inputs (v1 block inputs) kept by default, in bytes: about what the StyleGAN2 cache
# takes at 1024 px. Everything fits for 256 px StyleGAN3 networks and for every v1 one; at 1024 px
# StyleGAN3 keeps the input of the second-to-last layer, so a change of the last layers' w
# re-renders in ~6-8% of a frame.
CHECKPOINT_BUDGET = 512 << 20


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
                and _same(self.w, w))


def _same(a, b):
    """Exact equality of nested tuples holding tensors and plain values."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


class BlockCache:
    """Per-block outputs of the last synthesis passes of one network (batch 1)."""

    def __init__(self, keep_layer_outputs=True, checkpoint_budget=CHECKPOINT_BUDGET):
        """keep_layer_outputs: also keep each block's conv0 output (about doubles the memory, 1024 px:
        ~270 -> ~540 MB) so that a change starting at a conv1 layer reruns that layer, not the block,
        and the pre-noise output of the layer the last pass started at (up to 134 MB more).
        checkpoint_budget: bytes of StyleGAN3 layer inputs (v1 block inputs) to keep (LayerCheckpoints)."""
        self.keep_layer_outputs = keep_layer_outputs
        self.checkpoint_budget = checkpoint_budget
        self.checkpoints = None  # LayerCheckpoints of a StyleGAN3 or v1 network
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
        self.checkpoints = None

    def layer_checkpoints(self, synthesis):
        """The LayerCheckpoints for this StyleGAN3 or v1 synthesis network (new when the network is)."""
        if self.checkpoints is None or self.checkpoints.network is not synthesis:
            self.clear()
            self.checkpoints = LayerCheckpoints(synthesis, self.checkpoint_budget)
        self.checkpoints.must_run = self.must_run
        return self.checkpoints

    def reused(self):
        """How many blocks (StyleGAN2, v1) or layers (StyleGAN3) the last pass took from the cache."""
        if self.checkpoints is not None:
            return self.checkpoints.start
        return max(self.blocks_seen - self.blocks_run, 0)

    def applies(self, ws, noise_mode, noise_generator):
        """Batch 1 only, and random noise only when it comes from a generator (reproducible)."""
        return ws.shape[0] == 1 and not torch.is_grad_enabled() and (
            noise_mode != "random" or noise_generator is not None)

    def run(self, synthesis, block_ws, should_stop=None, force_fp32=True, fused_modconv=None, noise_mode="const",
            noise_strength=1.0, noise_generator=None):
        """The synthesis pass with reuse: the same image as synthesis(ws) without a cache."""
        if self._network is not synthesis:
            self.clear()
            self._network = synthesis
        settings = _settings(force_fp32, fused_modconv, noise_mode, noise_generator)
        layer_kwargs = dict(noise_mode=noise_mode, noise_strength=noise_strength, noise_generator=noise_generator)
        self.blocks_run = self.images_run = self.layers_run = self.convs_skipped = self.blocks_seen = 0
        x = img = None
        reusing = True
        for res, cur_ws in zip(synthesis.block_resolutions, block_ws):
            if should_stop is not None and should_stop():
                raise RenderCancelled("synthesis cancelled")
            self.blocks_seen += 1
            block = getattr(synthesis, f"b{res}")
            forced = _holds(block, self.must_run)  # a capture's block: its layers run
            layers = _conv_layers(block)
            conv_inputs, torgb_w = _block_inputs(block, cur_ws, settings, noise_mode, noise_strength)
            entry = self.entries.get(res) if reusing else None
            fast = block.runs_fast(cur_ws, force_fp32)
            fused = block._fused_modconv(fused_modconv, torch.float32, 1)
            x_mid = None

            if entry is not None and _same(entry.conv_inputs, conv_inputs) and _same(entry.torgb_w, torgb_w):
                if forced:  # run for its hooks; the outputs equal the kept ones
                    self.blocks_run += 1
                    block(x, img, cur_ws, force_fp32=force_fp32, fused_modconv=fused_modconv, **layer_kwargs)
                else:
                    _skip_noise_draws(layers, cur_ws, noise_mode, noise_strength, noise_generator)
                x, img = entry.x, entry.img  # nothing that decides this block changed
                continue
            if reusing:
                self._drop_from(res)  # later entries were computed from what is about to change
                reusing = False

            if forced:
                entry = None  # the shortcuts below skip some of the block's layers: run it whole
            if entry is not None and _same(entry.conv_inputs, conv_inputs):
                # Only the ToRGB w changed: x stands, the image is recomputed from the previous one.
                _skip_noise_draws(layers, cur_ws, noise_mode, noise_strength, noise_generator)
                x, x_mid = entry.x, entry.x_mid
                img = block.image_step(x, img, torgb_w, fused_modconv=fused, fast=fast)
                self.images_run += 1
            elif (entry is not None and entry.x_mid is not None and len(layers) == 2
                  and _same(entry.conv_inputs[0], conv_inputs[0]) and _same(entry.conv_inputs[2], conv_inputs[2])):
                # conv0 unchanged (a mixing range or a noise strength that starts at conv1): rerun from conv1.
                _skip_noise_draws(layers[:1], cur_ws, noise_mode, noise_strength, noise_generator)
                x_mid = entry.x_mid
                x = self._starting_layer(res, 1, block.conv1, x_mid, cur_ws[:, 1], fused, layer_kwargs)
                img = block.image_step(x, img, torgb_w, fused_modconv=fused, fast=fast)
                self.layers_run += 1
            elif (entry is not None and len(layers) == 2 and block.architecture != "resnet"
                  and _same(entry.conv_inputs[2], conv_inputs[2])):
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
        # The caller may write into the image it gets; the kept one must stay as it was.
        return img.clone(memory_format=torch.contiguous_format)

    def rerun_from(self, synthesis, ws, noise_mode="const", noise_strength=1.0, force_fp32=True,
                   fused_modconv=None, noise_generator=None):
        """The resolution of the first block a pass with these inputs would (partly) recompute, or
        None when it would come entirely from the cache. Lets a renderer skip a low-resolution
        preview when only fine layers changed (the cached re-render is then the quick frame)."""
        if self._network is not synthesis or not self.applies(ws, noise_mode, noise_generator):
            return synthesis.block_resolutions[0]
        settings = _settings(force_fp32, fused_modconv, noise_mode, noise_generator)
        for res, block, cur_ws in _blocks_with_ws(synthesis, ws):
            conv_inputs, torgb_w = _block_inputs(block, cur_ws, settings, noise_mode, noise_strength)
            entry = self.entries.get(res)
            if entry is None or not (_same(entry.conv_inputs, conv_inputs) and _same(entry.torgb_w, torgb_w)):
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
        for res, block, cur_ws in _blocks_with_ws(synthesis, ws):
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
        StyleGAN2: a block's features, its conv0's output and, outside resnet blocks, its conv1's
        (the block's features). StyleGAN3 and v1: a layer's (block's) output where it is the kept
        input of the next. settings: as rerun_from (StyleGAN2) or stage_keys take them."""
        if self.checkpoints is not None:
            return self._kept_stage_output(synthesis, ws, module, settings)
        if self._network is not synthesis:
            return None
        res = next((r for r in synthesis.block_resolutions if _holds(getattr(synthesis, f"b{r}"), module)), None)
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

    def _kept_stage_output(self, synthesis, ws, module, settings):
        kept = self.checkpoints
        if kept.network is not synthesis or kept.keys is None:
            return None
        stage = kept.stage_of(module)
        if module is not synthesis.checkpoint_stages()[stage] or (stage + 1) not in kept.inputs:
            return None
        if not self.applies(ws, settings.get("noise_mode", "const"), settings.get("noise_generator")):
            return None
        if kept.first_changed(synthesis.stage_keys(ws, **settings)) <= stage:
            return None
        return kept.inputs[stage + 1]

    def rerun_fraction(self, synthesis, ws, noise_mode="const", noise_generator=None, **settings):
        """StyleGAN3 and v1: the estimated share of a whole pass that a pass with these ws and
        settings (as synthesis takes them) would run: 0 when everything comes from the cache, 1
        with nothing kept for this network."""
        kept = self.checkpoints
        if kept is None or kept.network is not synthesis or not self.applies(ws, noise_mode, noise_generator):
            return 1.0
        keys = synthesis.stage_keys(ws, noise_mode=noise_mode, noise_generator=noise_generator, **settings)
        return kept.share_from(kept.plan_start(keys))

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
        left a drag's second step faulting 116 MB). 0 for StyleGAN3 and v1, whose kept inputs
        live in buffers of their own."""
        if self.checkpoints is not None or not self.keep_layer_outputs:
            return 0
        sizes = [entry.x.numel() * entry.x.element_size() for entry in self.entries.values() if entry.x is not None]
        return 3 * max(sizes, default=0)

    def nbytes(self):
        """Memory the kept outputs take."""
        tensors = [t for entry in self.entries.values() for t in (entry.x, entry.img, entry.x_mid)]
        tensors += [self.pre_noise.y] if self.pre_noise is not None else []
        kept = self.checkpoints.nbytes() if self.checkpoints is not None else 0
        return kept + sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _holds(module, inner):
    """Whether `inner` is `module` or one of its submodules."""
    return inner is not None and any(m is inner for m in module.modules())


def _settings(force_fp32, fused_modconv, noise_mode, noise_generator):
    """What decides every block alike."""
    return (noise_mode, bool(force_fp32), fused_modconv,
            ops.generator_state(noise_generator) if noise_mode == "random" else None)


def _block_inputs(block, cur_ws, settings, noise_mode, noise_strength):
    """((ws row, noise signature, style offset) per conv layer + (settings, fast), ToRGB w or None) for one block."""
    layers = _conv_layers(block)
    has_torgb = block.is_last or block.architecture == "skip"
    torgb_w = cur_ws[:, len(layers)] if has_torgb else None
    conv_inputs = tuple((cur_ws[:, i], _noise_signature(layer, noise_mode, noise_strength), style_offset_of(layer))
                        for i, layer in enumerate(layers))
    conv_inputs += ((settings, bool(getattr(block, "fast", False))),)
    return conv_inputs, torgb_w


def _blocks_with_ws(synthesis, ws):
    """(resolution, block, its ws rows [1, n, w_dim] in float32) for each block, in order."""
    w_idx = 0
    for res in synthesis.block_resolutions:
        block = getattr(synthesis, f"b{res}")
        yield res, block, ws.to(torch.float32).narrow(1, w_idx, block.num_conv + block.num_torgb)
        w_idx += block.num_conv


def _detached(conv_inputs):
    """A private copy of the ws rows (the caller may reuse its tensor)."""
    return tuple((w.clone(), noise, offset) for w, noise, offset in conv_inputs[:-1]) + conv_inputs[-1:]


def _skip_noise_draws(layers, cur_ws, noise_mode, noise_strength, noise_generator):
    """Advance the noise generator as the skipped layers would have, so later layers draw the same noise."""
    if noise_mode != "random" or noise_generator is None:
        return
    for layer in layers:
        layer._noise(cur_ws, noise_mode, noise_strength, noise_generator)


# ---------------------------------------------------------------------------
# StyleGAN3 and StyleGAN v1: one stage after another (StyleGAN3's layers at full channel count,
# v1's blocks without a skip image), so no block stands alone; instead the inputs of a few stages,
# chosen to fit a memory budget, and the final output.


def choose_checkpoints(costs, sizes, budget):
    """The stages (indices 1..n-1) whose inputs to keep: greedily the one that cuts the expected
    re-render most per byte, until none fits `budget` bytes. A change is taken to be equally likely
    at any stage; a pass then starts at the nearest kept input at or before it."""
    n = len(costs)
    tail = [sum(costs[i:]) for i in range(n + 1)]  # cost of running stages i.. to the end

    def expected(kept):
        return sum(tail[max([j for j in kept if j <= changed], default=0)] for changed in range(n))

    kept, left = set(), budget
    while True:
        now = expected(kept)
        gains = [((now - expected(kept | {j})) / max(sizes[j], 1), j) for j in range(1, n)
                 if j not in kept and sizes[j] <= left]
        if not gains or max(gains)[0] <= 0:
            return sorted(kept)
        _, best = max(gains)
        kept.add(best)
        left -= sizes[best]


class LayerCheckpoints:
    """The kept stage inputs of one synthesis network and the keys that decided them.

    Stage keys: [what decides the first stage's input and the whole pass (settings, StyleGAN3's
    input w and transform), then each stage's own inputs (its w rows, noise settings)]. The input
    of stage j is decided by the first key and the keys of stages 0..j-1. The network's
    checkpoint_plan() gives each stage's estimated cost and input size. StyleGAN3's kept inputs
    live in buffers owned here, reused from pass to pass (the layer before writes straight into
    them: no copy); the final output is kept as it came.
    """

    def __init__(self, synthesis, budget):
        self.network = synthesis
        costs, sizes = synthesis.checkpoint_plan()
        self.count = len(costs)
        self.kept_stages = choose_checkpoints(costs, sizes, budget)
        self._tail_costs = [sum(costs[i:]) for i in range(len(costs) + 1)]
        self.keys = None  # the stage keys of the last pass
        self.inputs = {}  # stage index -> its input, computed with self.keys
        self.output = None  # the final output, when the last pass got there
        self._buffers = {}  # stage index -> flat float32 memory for its input (StyleGAN3)
        self.stages_run = 0  # stages the last pass ran
        self.start = 0  # the stage the last pass started at (self.count: none ran)
        self.must_run = None  # BlockCache.capturing's module: the pass starts at or before its stage

    def plan_start(self, keys, until=None):
        """The stage a pass with these keys would start at: the last kept input at or before the
        first changed key (and at or before stage `until`, when given), or 0 (the first stage's
        input is not kept), or the number of stages when nothing changed and the output is kept."""
        return self._start(self.first_changed(keys), until)

    def _start(self, changed, until):
        """plan_start, given the first changed stage."""
        if changed == self.count and self.output is not None and until is None:
            return self.count
        limit = changed if until is None else min(changed, until)
        return max([j for j in self.inputs if j <= limit], default=0)

    def resume(self, keys):
        """(the stage this pass starts at, that stage's input: None for stage 0, the kept output when
        nothing changed). Forgets whatever the changes make stale and takes `keys` as the current
        ones. With must_run set (BlockCache.capturing) the pass starts at or before its stage."""
        until = None if self.must_run is None else self.stage_of(self.must_run)
        changed = self.first_changed(keys)
        start = self._start(changed, until)
        self.start = start
        if start == self.count:
            return start, self.output
        # Inputs up to the first change stand (a pass from an earlier stage rewrites them unchanged).
        self.inputs = {j: x for j, x in self.inputs.items() if j <= changed}
        if changed < self.count:
            self.output = None
        self.keys = [_detached_key(key) for key in keys]
        return start, self.inputs.get(start)

    def stage_of(self, module):
        """The stage whose module is or holds `module`; 0 for one that runs before every stage
        (StyleGAN3's input layer)."""
        for index, stage in enumerate(self.network.checkpoint_stages()):
            if _holds(stage, module):
                return index
        return 0

    def first_changed(self, keys):
        """The first stage whose key differs from the last pass's (0 when the first key does: the
        whole pass changed), or the number of stages when none does."""
        if self.keys is None or not _same(self.keys[0], keys[0]):
            return 0
        return next((j for j in range(self.count) if not _same(self.keys[j + 1], keys[j + 1])), self.count)

    def share_from(self, index):
        """The estimated share of a whole pass that running layers index.. takes."""
        return self._tail_costs[index] / max(self._tail_costs[0], 1)

    def allocator(self, index):
        """For the StyleGAN3 layer before `index` when `index`'s input is kept: callable(shape) -> a
        channels-last float32 tensor in memory owned here (the layer's lean path writes its output there)."""
        if index not in self.kept_stages:
            return None

        def allocate(shape):
            n, c, h, w = shape
            buffer = self._buffers.get(index)
            if buffer is None or buffer.numel() < n * c * h * w:
                self._buffers[index] = None  # freed before the new one is made
                buffer = self._buffers[index] = torch.empty(n * c * h * w, dtype=torch.float32)
            return buffer[:n * c * h * w].view(n, h, w, c).permute(0, 3, 1, 2)

        return allocate

    def computed(self, index, x):
        """Stage `index`'s input (or, for index == the number of stages, the output) is now x."""
        if index == self.count:
            self.output = x
        elif index in self.kept_stages:
            self.inputs[index] = x

    def nbytes(self):
        """Memory the kept inputs, their buffers and the output take."""
        tensors = list(self._buffers.values()) + list(self.inputs.values()) + [self.output]
        seen, total = set(), 0
        for t in tensors:
            if t is not None and t.untyped_storage().data_ptr() not in seen:
                seen.add(t.untyped_storage().data_ptr())
                total += t.untyped_storage().nbytes()
        return total


def _detached_key(key):
    """A private copy of a stage key (the caller may reuse its tensors)."""
    if isinstance(key, torch.Tensor):
        return key.detach().clone()
    if isinstance(key, tuple):
        return tuple(_detached_key(k) for k in key)
    return key
