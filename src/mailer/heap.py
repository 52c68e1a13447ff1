"""Process-level memory settings shared by the long-running processes."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Exempt everything allocated at start-up from garbage collection.

    Modules, routes, models and pools live as long as the process; without this each full
    collection walks all of them again, which cost the API about a tenth of its CPU under
    load (docs/benchmarks.md). Call once start-up is done, and `thaw_heap` at shutdown.
    """
    gc.collect()
    gc.freeze()


def thaw_heap() -> None:
    """Undo `freeze_startup_heap`, so that what a stopped service leaves behind can be
    collected (a process that starts several services, such as the test suite)."""
    gc.unfreeze()
