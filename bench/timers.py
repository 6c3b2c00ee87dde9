"""The benchmarks' timers: one timed call, and the best or the median of several (wall clock)."""

import statistics
import time


def timed(fn):
    """(seconds, result) of one call of fn()."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def call_seconds(fn, repeats, warm_up=False):
    """The seconds of each of `repeats` calls of fn(); warm_up: one untimed call first."""
    if warm_up:
        fn()
    return [timed(fn)[0] for _ in range(repeats)]


def best_of(fn, repeats, warm_up=False):
    """The fastest of `repeats` calls, in seconds: the one least slowed by other work on the machine."""
    return min(call_seconds(fn, repeats, warm_up))


def median_of(fn, repeats):
    """The median of `repeats` calls, in seconds."""
    return statistics.median(call_seconds(fn, repeats))
