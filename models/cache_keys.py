"""What the two synthesis caches (block_cache for StyleGAN2, stage_cache for StyleGAN3 and v1) compare and share."""

import torch


def same(a, b):
    """Exact equality of nested tuples holding tensors and plain values."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def detached(key):
    """A private copy of a key's tensors (the caller may reuse its own)."""
    if isinstance(key, torch.Tensor):
        return key.detach().clone()
    if isinstance(key, tuple):
        return tuple(detached(k) for k in key)
    return key


def holds(module, inner):
    """Whether `inner` is `module` or one of its submodules."""
    return inner is not None and any(m is inner for m in module.modules())


def cacheable(ws, noise_mode, noise_generator):
    """Batch 1 without autograd, and random noise only when it comes from a generator (reproducible)."""
    return ws.shape[0] == 1 and not torch.is_grad_enabled() and (noise_mode != "random" or noise_generator is not None)


def generator_state(generator):
    """A random generator's state as bytes: what decides every draw it makes from here (cache keys)."""
    return bytes(generator.get_state().cpu().numpy().tobytes())
