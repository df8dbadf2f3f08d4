"""The simulated world: population and dialler lines, built once per run from the seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulator.categories import SOURCES, LegitKind, source_id
from simulator.lines import Lines, build_lines
from simulator.numbering import NumberAllocator, e164_expr
from simulator.outcomes import OutcomeTable
from simulator.population import Population, build_population
from simulator.scenario import Scenario

__all__ = ["World", "build_world"]

_TIME = pl.Datetime("ms", "UTC")


@dataclass(frozen=True)
class World:
    """Everything fixed for a run; the generator only adds calls to it."""

    scenario: Scenario
    population: Population
    lines: Lines
    outcomes: OutcomeTable
    service_codes: np.ndarray  # 955xx/12345 lines people call into

    def ground_truth(self) -> pl.DataFrame:
        """Nuisance numbers: number, category, sector, campaign_id, active window, spoofed."""
        lines = self.lines
        nuisance = lines.campaign >= 0
        campaigns = {c.campaign_id: c for c in lines.campaigns}
        campaign_ids = lines.campaign[nuisance]
        frame = pl.DataFrame(
            {
                "code": lines.code[nuisance],
                "category": [str(campaigns[i].category) for i in campaign_ids],
                "sector": [campaigns[i].sector for i in campaign_ids],
                "campaign_id": campaign_ids,
                "active_from": lines.active_from_ms[nuisance],
                "active_to": lines.active_to_ms[nuisance],
                "spoofed": lines.spoofed[nuisance],
            },
            schema_overrides={"category": pl.String, "sector": pl.String},
        )
        return _numbers_and_times(frame).sort("campaign_id", "active_from", "number")

    def legit_callers(self) -> pl.DataFrame:
        """Legitimate high-volume callers: number, kind, active window."""
        legit = self.lines.campaign < 0
        frame = pl.DataFrame(
            {
                "code": self.lines.code[legit],
                "kind": [SOURCES[s] for s in self.lines.source[legit]],
                "active_from": self.lines.active_from_ms[legit],
                "active_to": self.lines.active_to_ms[legit],
            },
            schema_overrides={"kind": pl.String},
        )
        return _numbers_and_times(frame)

    def campaigns(self) -> pl.DataFrame:
        """One row per campaign: id, category, sector, window, caller numbers and drawn shape.

        The shape columns say how the campaign was run: ``callees`` (population,
        targets, segment_sequential, segment_random or segments), ``rhythm``, ``duty``
        (share of hours on; 1 = steady), ``lines`` (agents at once), per-line
        ``calls_per_line_day``, ``answer_rate`` and ``talk_median_s``.
        """
        campaigns = self.lines.campaigns
        campaign_of_line = self.lines.campaign[self.lines.campaign >= 0]
        numbers = np.bincount(campaign_of_line, minlength=len(campaigns))
        frame = pl.DataFrame(
            {
                "campaign_id": [c.campaign_id for c in campaigns],
                "category": [str(c.category) for c in campaigns],
                "sector": [c.sector for c in campaigns],
                "active_from": [c.active_from_ms for c in campaigns],
                "active_to": [c.active_to_ms for c in campaigns],
                "numbers": numbers,
                "callees": [c.shape.callees for c in campaigns],
                "rhythm": [c.shape.rhythm for c in campaigns],
                "duty": [c.shape.duty for c in campaigns],
                "lines": [c.shape.lines for c in campaigns],
                "calls_per_line_day": [c.shape.calls_per_line_day for c in campaigns],
                "answer_rate": [c.shape.answer_rate for c in campaigns],
                "talk_median_s": [c.shape.talk_median_s for c in campaigns],
            },
            schema={
                "campaign_id": pl.Int32,
                "category": pl.String,
                "sector": pl.String,
                "active_from": pl.Int64,
                "active_to": pl.Int64,
                "numbers": pl.Int64,
                "callees": pl.String,
                "rhythm": pl.String,
                "duty": pl.Float64,
                "lines": pl.Int32,
                "calls_per_line_day": pl.Float64,
                "answer_rate": pl.Float64,
                "talk_median_s": pl.Float64,
            },
        )
        return frame.with_columns(pl.col("active_from", "active_to").cast(_TIME))

    def subscribers(self) -> pl.DataFrame:
        """Background subscribers (all ``normal``): number, contacts, expected calls a day."""
        frame = pl.DataFrame(
            {
                "code": self.population.codes,
                "contacts": self.population.contact_counts(),
                "daily_calls": self.population.daily_calls,
            }
        )
        return frame.select(e164_expr(pl.col("code")).alias("number"), "contacts", "daily_calls")


def _numbers_and_times(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        e164_expr(pl.col("code")).alias("number"),
        pl.exclude("code", "active_from", "active_to"),
        pl.col("active_from").cast(_TIME),
        pl.col("active_to").cast(_TIME),
    )


def build_world(scenario: Scenario) -> World:
    """Build the world for ``scenario``; the same seed always builds the same world."""
    rng = np.random.default_rng([scenario.seed, 0])
    allocator = NumberAllocator()
    # One allocator for everyone: no subscriber, campaign or legit caller shares a number.
    population = build_population(scenario.subscribers, rng, allocator)
    lines = build_lines(scenario, population, rng, allocator)
    service_sources = [
        source_id(kind)
        for kind in (
            LegitKind.BANK_SERVICE,
            LegitKind.UTILITY_SERVICE,
            LegitKind.GOVERNMENT_HOTLINE,
        )
    ]
    service_codes = lines.code[np.isin(lines.source, service_sources)]
    return World(
        scenario=scenario,
        population=population,
        lines=lines,
        outcomes=OutcomeTable.build(
            scenario.subscribers.answer_rate,
            lines.drawn_outcomes,
            scenario.subscribers.answer_rate_spread,
        ),
        service_codes=service_codes,
    )
