"""Write a run to Parquet: CDRs, complaints and the ground truth, for notebooks and training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from tqdm import tqdm

from simulator.run import simulate
from simulator.scenario import Scenario
from simulator.world import build_world

__all__ = ["ParquetPaths", "write_parquet"]

_ROW_GROUP_ROWS = 250_000  # hourly chunks are small; gather a few into each row group


@dataclass(frozen=True)
class ParquetPaths:
    """Where one run's tables were written, and how many rows each has."""

    cdrs: Path
    complaints: Path
    ground_truth: Path
    legit_callers: Path
    campaigns: Path
    subscribers: Path
    cdr_rows: int
    complaint_rows: int


class _BufferedWriter:
    """Appends frames to one Parquet file in row groups of about ``_ROW_GROUP_ROWS``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, frame: pl.DataFrame) -> None:
        self._pending.append(frame)
        self._pending_rows += frame.height
        if self._pending_rows >= _ROW_GROUP_ROWS:
            self._flush()

    def close(self, empty_schema: pl.DataFrame) -> None:
        if self._writer is None and not self._pending:
            self._pending.append(empty_schema)
        self._flush()
        if self._writer is not None:
            self._writer.close()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pl.concat(self._pending, rechunk=True).to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table)
        self._pending, self._pending_rows = [], 0


def write_parquet(
    scenario: Scenario, out_dir: str | Path, *, progress: bool = True
) -> ParquetPaths:
    """Simulate ``scenario`` into ``out_dir`` (created if needed); returns the paths.

    Files: ``cdrs.parquet``, ``complaints.parquet``, ``ground_truth.parquet``
    (nuisance numbers), ``legit_callers.parquet``, ``campaigns.parquet``,
    ``subscribers.parquet``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = build_world(scenario)
    paths = {
        name: out / f"{name}.parquet"
        for name in (
            "cdrs",
            "complaints",
            "ground_truth",
            "legit_callers",
            "campaigns",
            "subscribers",
        )
    }
    world.ground_truth().write_parquet(paths["ground_truth"])
    world.legit_callers().write_parquet(paths["legit_callers"])
    world.campaigns().write_parquet(paths["campaigns"])
    world.subscribers().write_parquet(paths["subscribers"])

    cdr_writer = _BufferedWriter(paths["cdrs"])
    complaint_writer = _BufferedWriter(paths["complaints"])
    cdr_schema = complaint_schema = None
    bar = tqdm(
        total=scenario.hours, unit="h", desc=f"simulate {scenario.name}", disable=not progress
    )
    cdr_rows = complaint_rows = 0
    with bar:
        for chunk in simulate(scenario, world):
            cdr_writer.add(chunk.cdrs)
            complaint_writer.add(chunk.complaints)
            cdr_rows += chunk.cdrs.height
            complaint_rows += chunk.complaints.height
            cdr_schema, complaint_schema = chunk.cdrs.clear(), chunk.complaints.clear()
            bar.update(1)
            bar.set_postfix(cdrs=cdr_rows, refresh=False)
    assert cdr_schema is not None and complaint_schema is not None  # hours >= 1
    cdr_writer.close(cdr_schema)
    complaint_writer.close(complaint_schema)
    return ParquetPaths(
        cdrs=paths["cdrs"],
        complaints=paths["complaints"],
        ground_truth=paths["ground_truth"],
        legit_callers=paths["legit_callers"],
        campaigns=paths["campaigns"],
        subscribers=paths["subscribers"],
        cdr_rows=cdr_rows,
        complaint_rows=complaint_rows,
    )
