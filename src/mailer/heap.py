"""Process-level memory settings shared by the long-running processes."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# The youngest generation is collected after 50,000 net allocations of container objects
# instead of 700: a batch of 500 emails allocates some 15,000 objects, most of them
# short-lived, and the default ran a collection every few dozen emails (7 % of an API
# process's samples).
_THRESHOLDS = (50_000, 20, 10)
_saved: list[tuple[int, int, int]] = []


def freeze_startup_heap() -> None:
    """Exempt everything allocated at start-up from garbage collection.

    Modules, routes, models and pools live as long as the process; without this each full
    collection walks all of them again, which cost the API about a tenth of its CPU under
    load (docs/benchmarks.md). Call once start-up is done, and `thaw_heap` at shutdown.
    """
    gc.collect()
    gc.freeze()
    _saved.append(gc.get_threshold())
    gc.set_threshold(*_THRESHOLDS)


def thaw_heap() -> None:
    """Undo `freeze_startup_heap`, so that what a stopped service leaves behind can be
    collected (a process that starts several services, such as the test suite)."""
    gc.unfreeze()
    if _saved:
        gc.set_threshold(*_saved.pop())


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """`freeze_startup_heap` for the length of a `with` block, `thaw_heap` after it."""
    freeze_startup_heap()
    try:
        yield
    finally:
        thaw_heap()
