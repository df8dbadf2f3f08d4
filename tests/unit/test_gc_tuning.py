"""The worker's collector settings: applied with start-up frozen, refused when they turn it off."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from streams.settings import Settings
from streams.tuning.gc_tuning import tune


@pytest.fixture()
def collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_sets_the_thresholds_and_freezes_what_is_alive(collector: None) -> None:
    tune((12_345, 6, 7))
    assert gc.get_threshold() == (12_345, 6, 7)
    assert gc.get_freeze_count() > 1000  # at least this test process's modules


def test_thresholds_come_from_the_environment_and_zero_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().gc_thresholds == (50_000, 20, 100)
    monkeypatch.setenv("CALLGUARD_GC_THRESHOLDS", "[700, 10, 10]")
    assert Settings().gc_thresholds == (700, 10, 10)
    monkeypatch.setenv("CALLGUARD_GC_THRESHOLDS", "[0, 10, 10]")
    with pytest.raises(ValidationError, match="turns collection off"):
        Settings()
