"""RecentFrames: a network's last full images, keyed by every input that decides them: going back costs nothing."""

import collections
import hashlib

import torch

from models import style_space

# Bytes of kept images: ten 1024 px frames (12.6 MB each in float32), forty at 512 px.
RECENT_FRAMES_BYTES = 128 << 20
# Bytes of kept layer captures (the Layers view): one StyleGAN2-1024 b1024 output (134 MB) or
# several smaller ones, so that changing the channels, scaling or FFT of a view needs no pass.
RECENT_CAPTURES_BYTES = 256 << 20


def frame_key(net_key, G, ws, kwargs):
    """Everything that decides a full image besides the weights: the network, the ws, the noise
    settings (random noise only from a seeded generator), the StyleSpace offsets, the StyleGAN3
    input transform and which path (fast or reference) each layer takes. None where the image is
    not reproducible."""
    generator = kwargs.get("noise_generator")
    if kwargs.get("noise_mode") == "random" and generator is None:
        return None
    strength = kwargs.get("noise_strength", 1.0)
    if isinstance(strength, dict):
        strength = tuple(sorted(strength.items()))
    transform = getattr(getattr(G.synthesis, "input", None), "transform", None)
    offsets = tuple((name, _digest(affine.output_offset)) for name, affine, _ in style_space.style_layers(G.synthesis)
                    if affine.output_offset is not None)
    paths = tuple((getattr(m, "fast", None), getattr(m, "reference", None)) for m in G.synthesis.modules())
    return (
        net_key,
        tuple(ws.shape),
        _digest(ws),
        None if transform is None else _digest(transform),
        offsets,
        kwargs.get("noise_mode"),
        strength,
        None if generator is None else generator.initial_seed(),
        kwargs.get("force_fp32"),
        hash(paths),
    )


def _digest(tensor):
    """A digest of a tensor's exact float values (bit-for-bit: -0.0 and 0.0 differ, as they may in an image)."""
    return hashlib.blake2b(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes(),
                           digest_size=16).digest()


class RecentFrames:
    """Least recently used tensors within a byte budget: raw images [1, C, H, W] or captured layer
    outputs. The renderer keeps one of each per network: back and forth over a mixing range, a
    seed, a noise mode or a checkbox shows frames already made at once, and another view of a
    captured layer needs no pass."""

    def __init__(self, budget=RECENT_FRAMES_BYTES, keep_oversized=False):
        """keep_oversized: an item larger than the whole budget is kept alone (everything else goes)
        instead of not at all: for layer captures, where one StyleGAN3 1024 px layer (353 MB for
        T's L10) outgrows the budget, and without it each change of its view ran the network again.
        A budget of 0 still keeps nothing."""
        self.budget = budget
        self.keep_oversized = keep_oversized and budget > 0
        self._images = collections.OrderedDict()  # key -> tensor
        self._bytes = 0

    def get(self, key):
        """The image kept for `key`, or None."""
        image = None if key is None else self._images.get(key)
        if image is not None:
            self._images.move_to_end(key)
        return image

    def put(self, key, image):
        """Keep a copy of `image` (the block cache and StyleGAN3's kept buffers may reuse the memory
        of the one they returned), unless the key is None or the image exceeds the whole budget
        (then, with keep_oversized, it is kept alone)."""
        size = self._nbytes(image)
        if key is None or (size > self.budget and not self.keep_oversized):
            return
        if key in self._images:
            self._bytes -= self._nbytes(self._images.pop(key))
        # Room first, then the copy: the copy may take the memory just freed instead of new pages.
        while self._images and self._bytes + size > self.budget:
            _, old = self._images.popitem(last=False)
            self._bytes -= self._nbytes(old)
        self._images[key] = image.clone()
        self._bytes += size

    def clear(self):
        self._images.clear()
        self._bytes = 0

    def nbytes(self):
        return self._bytes

    def __len__(self):
        return len(self._images)

    @staticmethod
    def _nbytes(image):
        return image.numel() * image.element_size()
