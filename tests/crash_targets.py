"""Stand-ins for a parser gone wrong, run as models.child_load's child (same arguments as its reader)."""

import ctypes
import time

from models.child_load import apply_limits


def segfault(source, out, report, key, memory_bytes, seconds):
    ctypes.string_at(0)  # reads address 0: SIGSEGV, as a C parser's unguarded recursion would


def allocate_forever(source, out, report, key, memory_bytes, seconds):
    apply_limits(memory_bytes, seconds)
    blocks = []
    while True:
        blocks.append(bytearray(64 << 20))


def sleep_forever(source, out, report, key, memory_bytes, seconds):
    time.sleep(3600)
