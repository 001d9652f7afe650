"""The validate pipeline pauses the cyclic garbage collector and restores it as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.errors import InputError
from batcher.pipeline import JobOptions, prepare, validate_file
from tests.sheets import write_csv

ROWS = [["From", "To", "Text"], ["+15555550100", "4155551234", "hi"]]


@pytest.fixture
def gc_state() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("gc_state")
@pytest.mark.parametrize("enabled", [True, False])
def test_gc_restored(tmp_path: Path, enabled: bool) -> None:
    """Enabled stays enabled and disabled stays disabled, also when the input is unusable."""
    (gc.enable if enabled else gc.disable)()
    path = write_csv(tmp_path / "in.csv", ROWS)
    prepare(JobOptions(path=path))
    assert gc.isenabled() is enabled
    validate_file(JobOptions(path=path))
    assert gc.isenabled() is enabled
    with pytest.raises(InputError, match="no such file"):
        validate_file(JobOptions(path=tmp_path / "missing.csv"))
    assert gc.isenabled() is enabled


@pytest.mark.usefixtures("gc_state")
def test_what_the_pause_kept_is_not_left_young() -> None:
    """Objects made while paused are not all walked by the first collection afterwards."""
    from batcher.pipeline import _cyclic_gc_paused

    gc.enable()
    gc.collect()
    with _cyclic_gc_paused():
        kept = [[n] for n in range(50_000)]  # lists: tracked by the collector
    # Left young, they are walked at once (and moved up a generation) by the next
    # allocations' collection; moved to the oldest, they are not.
    young = len(gc.get_objects(generation=0)) + len(gc.get_objects(generation=1))
    assert young < 10_000, f"{young:,} objects left in the young generations"
    assert len(kept) == 50_000
