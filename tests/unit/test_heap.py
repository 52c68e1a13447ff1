"""The start-up heap freeze and its undoing."""

from __future__ import annotations

import gc

from mailer.heap import freeze_startup_heap, frozen_heap, thaw_heap


def test_freeze_then_thaw_restores_the_collector() -> None:
    before = gc.get_threshold()
    freeze_startup_heap()
    try:
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == 50_000
    finally:
        thaw_heap()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_a_frozen_heap_thaws_when_its_block_ends_even_on_error() -> None:
    before = gc.get_threshold()
    try:
        with frozen_heap():
            assert gc.get_freeze_count() > 0
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
