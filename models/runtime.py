"""Process-wide settings for rendering, in one place: OpenMP waits, glibc malloc, threads, CUDA TF32.

short_openmp_waits() (before torch loads), tune_cpu() (malloc, threads), reserve_heap() (fault in
memory ahead of need), faithful_cuda() (no TF32).

A 1024 px StyleGAN2 frame allocates and frees tensors of 32-128 MB in every layer. glibc serves
anything above its mmap threshold (at most 32 MiB) with a fresh mmap and returns it with munmap,
so every frame faults in hundreds of MB of new zeroed pages (NVIDIA's CPU path spends most of its
time in the kernel this way). Turning mmap off for malloc and raising the trim threshold keeps
that memory in the heap between frames. One arena makes the render thread's big blocks come from
the same heap (other arenas are capped at 64 MB mmap'd heaps).
"""

import ctypes
import ctypes.util
import os
import platform
import sys

# Environment for torch's OpenMP runtime, read once when torch loads it (libgomp on Linux wheels,
# LLVM's libomp elsewhere). Idle OpenMP threads otherwise spin for milliseconds after every torch
# operation, on the very cores the numba loops' threads need between those operations: with 2
# threads a StyleGAN3-R frame took 4.0 s spinning against 2.6 s (T: 2.7 against 2.1 s).
OPENMP_ENVIRONMENT = {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "1"}

# glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4
M_ARENA_MAX = -8

_applied = {}


def short_openmp_waits():
    """Set OPENMP_ENVIRONMENT (unless the user set those variables); it takes effect only if torch
    has not been imported yet, so entry points call this first. Returns whether it can still work."""
    for name, value in OPENMP_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    return "torch" not in sys.modules


def _glibc():
    """glibc as a ctypes library, or None elsewhere (musl, macOS, Windows)."""
    if platform.system() != "Linux":
        return None
    libc_name, _version = platform.libc_ver()
    if libc_name != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


KEEP_BYTES = 1 << 30  # freed memory the heap keeps (glibc's trim threshold)


def tune_malloc(keep_bytes=KEEP_BYTES):
    """Keep freed memory (up to keep_bytes) in the heap instead of unmapping it; no-op off glibc.

    Returns {setting: accepted} for what was tried, {} when nothing applies here.
    """
    libc = _glibc()
    if libc is None:
        return {}
    keep = int(min(keep_bytes, 2 ** 31 - 1))
    settings = {
        "M_MMAP_MAX": (M_MMAP_MAX, 0),  # big blocks from the heap, not a fresh mmap each time
        "M_TRIM_THRESHOLD": (M_TRIM_THRESHOLD, keep),  # do not give the top of the heap back per frame
        "M_TOP_PAD": (M_TOP_PAD, 64 << 20),  # grow the heap in large steps
        "M_ARENA_MAX": (M_ARENA_MAX, 1),  # the render thread's blocks come from that same heap
    }
    return {name: bool(libc.mallopt(param, value)) for name, (param, value) in settings.items()}


def reserve_heap(nbytes):
    """Fault in `nbytes` at the top of the heap now and hand them back to malloc, which keeps them
    (the trim threshold above): later blocks of up to that size get pages already touched instead
    of fresh zeroed ones, each a fault of ~5-10 us per 4 KB here. Meant for idle time before work
    that would grow the heap (the block cache's first re-renders: 0.84 -> 0.12 s at 1024 px).
    Only with tune_malloc's settings in force (without them a big block is an mmap that free
    unmaps); returns whether it did anything."""
    libc = _glibc()
    size = min(int(nbytes), KEEP_BYTES // 2)  # well under the trim threshold, or free would give it back
    if libc is None or not _applied.get("malloc", {}).get("M_MMAP_MAX") or size <= 0:
        return False
    libc.malloc.argtypes, libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
    libc.free.argtypes, libc.free.restype = [ctypes.c_void_p], None
    block = libc.malloc(size)
    if not block:
        return False
    ctypes.memset(block, 0, size)
    libc.free(block)
    return True


def tune_cpu(num_threads=None, malloc=True):
    """Process-wide CPU settings for rendering; safe to call more than once (later calls only set threads).

    num_threads: torch intra-op threads for the calling thread (None leaves torch's choice; a
    render worker thread should set its own, since OpenMP's count is per thread).
    Returns what was applied, for logs and the benchmark.
    """
    import torch  # here, not at the top: short_openmp_waits() must be able to run before torch loads

    if malloc and "malloc" not in _applied:
        _applied["malloc"] = tune_malloc()
    if "interop" not in _applied:
        try:
            # Inter-op parallelism buys nothing for one sequential network and costs a thread pool.
            torch.set_num_interop_threads(1)
            _applied["interop"] = 1
        except RuntimeError:  # already set, or parallel work already ran: leave it
            _applied["interop"] = torch.get_num_interop_threads()
    if num_threads:
        torch.set_num_threads(int(num_threads))
    return dict(_applied, threads=torch.get_num_threads(), cpus=os.cpu_count())


def faithful_cuda():
    """Full float32 convolutions and matrix products on CUDA (TF32 off); a no-op without CUDA.

    PyTorch lets cuDNN run float32 convolutions in TF32 by default (10-bit mantissa): on an H100
    that moved both our paths 3-5e-3 away from float32 results, over the 1e-3 that faithfulness
    to NVIDIA's pixels allows (2e-6 with TF32 off). Networks that ask for fp16 layers keep them.
    """
    import torch

    if not torch.cuda.is_available():
        return False
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    if hasattr(conv, "fp32_precision"):  # torch >= 2.9: the precision API (mixing it with allow_tf32 is refused)
        conv.fp32_precision = "ieee"
        matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        matmul.allow_tf32 = False
    return True
