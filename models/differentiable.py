"""Differentiable synthesis: how every family's ws -> image pass becomes one autograd can follow.

The fast CPU paths (numba loops, in-place activations, kept buffers, the block cache) build no
autograd graph. Each of them asks `needs_graph` first and steps aside for the reference path
(out-of-place operations) when the answer is yes, so the image and its gradient are those of
the faithful forward pass. Two ways to get that:

    ws.requires_grad_(True)                  # under torch.enable_grad(): detected per layer
    img = G.synthesis(ws, noise_mode="const")

    with differentiable_synthesis():          # explicit: every layer takes the graph-building
        img = G.synthesis(ws, noise_mode="const")   # path, grad on, whatever requires grad

The context is per thread (the render worker's projection or drag does not change the paths of
another thread) and nests. A new family's fast path must call `needs_graph` the same way.
"""

import contextlib
import threading

import torch

_state = threading.local()


def forced():
    """Whether this thread is inside differentiable_synthesis()."""
    return getattr(_state, "depth", 0) > 0


def needs_graph(*tensors):
    """Whether an op on these tensors must build an autograd graph (so no in-place or numba path)."""
    if forced():
        return True
    if not torch.is_grad_enabled():
        return False
    return any(t is not None and getattr(t, "requires_grad", False) for t in tensors)


@contextlib.contextmanager
def differentiable_synthesis():
    """Inside: grad is on and every synthesis layer takes its differentiable, out-of-place path."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        with torch.enable_grad():
            yield
    finally:
        _state.depth -= 1
