"""StageCache: StyleGAN3 (layers) and StyleGAN v1 (blocks) re-render from the last kept stage input
whose upstream is unchanged.

These networks have no image built up beside the features, so one stage's output is all the next
one needs: the cache keeps the inputs of a few stages, chosen to fit a memory budget, and the final
output. (StyleGAN2's per-block cache is models/block_cache.py.)

Stage keys (the network's stage_keys): [what decides the first stage's input and the whole pass
(settings, StyleGAN3's input w and transform), then each stage's own inputs (its w rows, noise
settings)]. The input of stage j is decided by the first key and the keys of stages 0..j-1. The
network's checkpoint_plan() gives each stage's estimated cost and input size.

Usage (the caller owns one cache per loaded network; G.synthesis.new_cache() makes the right kind):
    cache = StageCache()
    img = G.synthesis(ws, block_cache=cache)   # same pixels as without it
"""

import contextlib

import torch

from models.cache_keys import cacheable, detached, holds, same

# Stage inputs kept by default, in bytes: about what the StyleGAN2 cache takes at 1024 px.
# Everything fits for 256 px StyleGAN3 networks and for every v1 one; at 1024 px StyleGAN3 keeps
# the input of the second-to-last layer, so a change of the last layers' w re-renders in ~6-8% of a frame.
CHECKPOINT_BUDGET = 512 << 20


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


class StageCache:
    """The kept stage inputs of one synthesis network (batch 1) and the keys that decided them.

    StyleGAN3's kept inputs live in buffers owned here, reused from pass to pass (the layer before
    writes straight into them: no copy); the final output is kept as it came."""

    def __init__(self, checkpoint_budget=CHECKPOINT_BUDGET):
        self.checkpoint_budget = checkpoint_budget
        self.network = None  # the synthesis network the kept values belong to
        self.must_run = None  # a module the pass must run even where its inputs are unchanged (capturing)
        self.stages_run = 0  # stages the last pass ran
        self.start = 0  # the stage the last pass started at (self.count: none ran)
        self.clear()

    def clear(self):
        """Forget everything (the caller changed weights, say)."""
        self.keys = None  # the stage keys of the last pass
        self.inputs = {}  # stage index -> its input, computed with self.keys
        self.output = None  # the final output, when the last pass got there
        self._buffers = {}  # stage index -> flat float32 memory for its input (StyleGAN3)

    def _bind(self, synthesis):
        """Plan the kept stages for this network (forgetting another's)."""
        if self.network is synthesis:
            return
        self.clear()
        self.network = synthesis
        costs, sizes = synthesis.checkpoint_plan()
        self.count = len(costs)
        self.kept_stages = choose_checkpoints(costs, sizes, self.checkpoint_budget)
        self._tail_costs = [sum(costs[i:]) for i in range(len(costs) + 1)]

    @contextlib.contextmanager
    def capturing(self, module):
        """Passes inside start at or before the stage holding `module` (its forward hooks fire: a
        layer capture). What a pass recomputes that way equals what was kept, so nothing is dropped for it."""
        self.must_run = module
        try:
            yield
        finally:
            self.must_run = None

    def applies(self, ws, noise_mode, noise_generator):
        """Batch 1 only, and random noise only when it comes from a generator (reproducible)."""
        return cacheable(ws, noise_mode, noise_generator)

    def reused(self):
        """How many stages the last pass took from the cache."""
        return self.start

    # -- the pass (the network's forward calls these) --------------------------------------------

    def resume(self, synthesis, keys):
        """(the stage this pass starts at, that stage's input: None for stage 0, the kept output when
        nothing changed). Forgets whatever the changes make stale and takes `keys` as the current
        ones. With must_run set (capturing) the pass starts at or before its stage."""
        self._bind(synthesis)
        self.stages_run = 0
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
        self.keys = [detached(key) for key in keys]
        return start, self.inputs.get(start)

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

    # -- questions before a pass -----------------------------------------------------------------

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

    def first_changed(self, keys):
        """The first stage whose key differs from the last pass's (0 when the first key does: the
        whole pass changed), or the number of stages when none does."""
        if self.keys is None or not same(self.keys[0], keys[0]):
            return 0
        return next((j for j in range(self.count) if not same(self.keys[j + 1], keys[j + 1])), self.count)

    def stage_of(self, module):
        """The stage whose module is or holds `module`; 0 for one that runs before every stage
        (StyleGAN3's input layer)."""
        for index, stage in enumerate(self.network.checkpoint_stages()):
            if holds(stage, module):
                return index
        return 0

    def rerun_fraction(self, synthesis, ws, noise_mode="const", noise_generator=None, **settings):
        """The estimated share of a whole pass that a pass with these ws and settings (as synthesis
        takes them) would run: 0 when everything comes from the cache, 1 with nothing kept for this network."""
        if self.network is not synthesis or not self.applies(ws, noise_mode, noise_generator):
            return 1.0
        keys = synthesis.stage_keys(ws, noise_mode=noise_mode, noise_generator=noise_generator, **settings)
        return self._tail_costs[self.plan_start(keys)] / max(self._tail_costs[0], 1)

    def kept_output(self, synthesis, ws, module, **settings):
        """What `module` (a stage) output in the last pass, where it is the kept input of the next
        stage and nothing that decides it changed since; else None. A layer view of the image on
        screen then needs no pass. settings: as stage_keys takes them."""
        if self.network is not synthesis or self.keys is None:
            return None
        stage = self.stage_of(module)
        if module is not synthesis.checkpoint_stages()[stage] or (stage + 1) not in self.inputs:
            return None
        if not self.applies(ws, settings.get("noise_mode", "const"), settings.get("noise_generator")):
            return None
        if self.first_changed(synthesis.stage_keys(ws, **settings)) <= stage:
            return None
        return self.inputs[stage + 1]

    def rerender_growth(self):
        """0: the kept inputs live in buffers of their own, a re-render grows no heap beyond a frame's."""
        return 0

    def nbytes(self):
        """Memory the kept inputs, their buffers and the output take."""
        tensors = list(self._buffers.values()) + list(self.inputs.values()) + [self.output]
        seen, total = set(), 0
        for t in tensors:
            if t is not None and t.untyped_storage().data_ptr() not in seen:
                seen.add(t.untyped_storage().data_ptr())
                total += t.untyped_storage().nbytes()
        return total
