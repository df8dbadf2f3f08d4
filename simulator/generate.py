"""Per-hour call generation: background, dialler lines, call-backs, complaints.

Everything is vectorised over the hour's calls. Each hour draws from its own
generator, seeded by ``(seed, 1, hour)``; sequential diallers' positions in
their segments are the only state carried from hour to hour. Whether a bursty
line is on in an hour depends only on the seed, the line and the hour.
"""

from __future__ import annotations

import numpy as np

from simulator.calls import Calls
from simulator.categories import Category, source_id
from simulator.lines import RHYTHMS
from simulator.outcomes import ANSWERED, OUTCOME_NAMES
from simulator.profiles import CalleeStrategy
from simulator.rhythm import hour_weight
from simulator.world import World

__all__ = ["Complaints", "HourGenerator"]

HOUR_MS = 3_600_000
_BACKGROUND = source_id("background")
_CALLBACK = source_id("callback")
_BACKGROUND_OUTCOME = OUTCOME_NAMES.index("background")
_CALLBACK_DELAY_MEAN_MS = 15 * 60_000
_COMPLAINT_DELAY_MEAN_MS = 30 * 60_000
_NUISANCE_SOURCES = np.array([source_id(c) for c in Category])
_ONE_RING = source_id(Category.ONE_RING)
_DEBT_COLLECTION = source_id(Category.DEBT_COLLECTION)
_CATEGORY_OF_SOURCE = {source_id(c): index for index, c in enumerate(Category)}
# Sales people and shop owners call customers through long working days, weekends too.
_WORK_RHYTHM = ("extended", "people")


class Complaints:
    """Complaints as arrays: reporter and reported codes, category index, time, noise flag."""

    def __init__(
        self,
        reporter: np.ndarray,
        reported: np.ndarray,
        category: np.ndarray,
        time_ms: np.ndarray,
        is_noise: np.ndarray,
    ) -> None:
        self.reporter, self.reported, self.category = reporter, reported, category
        self.time_ms, self.is_noise = time_ms, is_noise

    def __len__(self) -> int:
        return int(self.reporter.size)

    def take(self, index: np.ndarray) -> Complaints:
        """The rows at ``index``."""
        return Complaints(
            self.reporter[index],
            self.reported[index],
            self.category[index],
            self.time_ms[index],
            self.is_noise[index],
        )

    @staticmethod
    def concat(parts: list[Complaints]) -> Complaints:
        """All rows of ``parts``, in order."""
        return Complaints(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in ("reporter", "reported", "category", "time_ms", "is_noise")
            )
        )

    @staticmethod
    def empty() -> Complaints:
        """No complaints."""
        return Complaints(
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty(0, np.int8),
            np.empty(0, np.int64),
            np.empty(0, bool),
        )


class HourGenerator:
    """Makes one hour of calls and complaints at a time, in order."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._cursor = world.lines.cursor.copy()
        self._legit_codes = world.lines.code[world.lines.campaign < 0]

    def hour(self, index: int) -> tuple[Calls, Complaints]:
        """Calls that start in hour ``index`` and their call-backs and complaints.

        Call-backs and complaints may fall after the hour: the caller holds them back.
        """
        rng = np.random.default_rng([self.world.scenario.seed, 1, index])
        hour_start = self.world.scenario.start_ms + index * HOUR_MS
        calls = Calls.concat(
            [
                self._with_outcomes(rng, self._background(rng, hour_start)),
                self._with_outcomes(rng, self._work_calls(rng, hour_start)),
                self._with_outcomes(rng, self._line_calls(rng, hour_start)),
            ]
        )
        callbacks = self._with_outcomes(rng, self._callbacks(rng, calls))
        complaints = self._complaints(rng, calls, hour_start)
        return Calls.concat([calls, callbacks]), complaints

    def _with_outcomes(self, rng: np.random.Generator, calls: Calls) -> Calls:
        return calls.with_outcomes(*self.world.outcomes.draw(rng, calls.outcome))

    def _background(self, rng: np.random.Generator, hour_start: int) -> Calls:
        population = self.world.population
        settings = self.world.scenario.subscribers
        expected = population.daily_calls.sum() / 24 * hour_weight("people", "people", hour_start)
        count = int(rng.poisson(expected))
        callers = np.searchsorted(population.rate_cdf, rng.random(count), side="right")
        callers = np.minimum(callers, population.size - 1)
        # Most calls go to contacts, the favourite ones far more often.
        offsets = population.contact_offsets
        degree = offsets[callers + 1] - offsets[callers]
        favourite = offsets[callers] + (degree * rng.random(count) ** 2).astype(np.int64)
        contact = population.contacts[np.minimum(favourite, population.contacts.size - 1)]
        stranger = self._strangers(rng, callers)
        kind = rng.random(count)
        to_stranger = (kind < settings.stranger_share) | (degree == 0)
        callee = population.codes[np.where(to_stranger, stranger, contact)]
        if self.world.service_codes.size:
            to_service = kind > 1 - settings.service_share
            service = self.world.service_codes[
                rng.integers(0, self.world.service_codes.size, count)
            ]
            callee = np.where(to_service, service, callee)
        return self._people_calls(rng, callers, callee, hour_start)

    def _work_calls(self, rng: np.random.Generator, hour_start: int) -> Calls:
        """Busy subscribers' work calls: customers, most of them outside their contacts."""
        population = self.world.population
        settings = self.world.scenario.subscribers
        weight = hour_weight(*_WORK_RHYTHM, hour_start)
        count = int(rng.poisson(population.work_calls.sum() / 24 * weight))
        if population.work_callers.size == 0:
            count = 0
        pick = np.searchsorted(population.work_cdf, rng.random(count), side="right")
        callers = population.work_callers[np.minimum(pick, population.work_callers.size - 1)]
        offsets = population.contact_offsets
        degree = offsets[callers + 1] - offsets[callers]
        contact_row = np.minimum(
            offsets[callers] + (degree * rng.random(count)).astype(np.int64),
            population.contacts.size - 1,
        )
        to_stranger = (rng.random(count) < settings.busy_stranger_share) | (degree == 0)
        stranger = self._strangers(rng, callers)
        callees = np.where(to_stranger, stranger, population.contacts[contact_row])
        return self._people_calls(rng, callers, population.codes[callees], hour_start)

    def _people_calls(
        self, rng: np.random.Generator, callers: np.ndarray, callees: np.ndarray, hour_start: int
    ) -> Calls:
        """Calls of subscribers (population indices) to ``callees`` (codes) in the hour."""
        count = callers.size
        return Calls(
            caller=self.world.population.codes[callers],
            callee=callees,
            start_ms=hour_start + rng.integers(0, HOUR_MS, count),
            source=np.full(count, _BACKGROUND, np.int8),
            campaign=np.full(count, -1, np.int32),
            outcome=self.world.outcomes.background_of(callers),
            callback_rate=self.world.population.callback_rate[callers],
            callback_outcome=np.full(count, _BACKGROUND_OUTCOME, np.int8),
        )

    def _strangers(self, rng: np.random.Generator, callers: np.ndarray) -> np.ndarray:
        """Anyone among the subscribers but the caller, by index."""
        size = self.world.population.size
        stranger = rng.integers(0, size, callers.size)
        return np.where(stranger == callers, (stranger + 1) % size, stranger)

    def _line_calls(self, rng: np.random.Generator, hour_start: int) -> Calls:
        lines = self.world.lines
        active = np.flatnonzero(
            (lines.active_from_ms <= hour_start) & (hour_start < lines.active_to_ms)
        )
        weights = np.array([hour_weight(daily, weekly, hour_start) for daily, weekly in RHYTHMS])
        expected = lines.calls_per_day[active] / 24 * weights[lines.rhythm[active]]
        expected *= self._burst_factor(active, hour_start)
        per_line = rng.poisson(expected)
        line = np.repeat(active, per_line)
        count = line.size
        # A line's k-th call of the hour: agents dial one call after another.
        first_row = np.repeat(np.cumsum(per_line) - per_line, per_line)
        rank = np.arange(count) - first_row
        line_total = np.repeat(per_line, per_line)
        start = hour_start + ((rank + rng.random(count)) * HOUR_MS / np.maximum(line_total, 1))
        callee = self._callees(rng, line, rank)
        self._cursor[active] += per_line
        return Calls(
            caller=lines.code[line],
            callee=callee,
            start_ms=start.astype(np.int64),
            source=lines.source[line],
            campaign=lines.campaign[line],
            outcome=lines.outcome[line],
            callback_rate=lines.callback_rate[line],
            callback_outcome=lines.callback_outcome[line],
        )

    def _burst_factor(self, active: np.ndarray, hour_start: int) -> np.ndarray:
        """Per active line: 0 in a bursty line's off hours, ``1 / duty`` in its on hours.

        A line is on when a uniform draw of its own for the hour falls below its duty,
        so it is on in a share ``duty`` of hours and its day's volume is kept. The
        draw comes from ``(seed, 2, hour)``, indexed by line: the same every run.
        """
        duty = self.world.lines.duty
        hour = (hour_start - self.world.scenario.start_ms) // HOUR_MS
        draws = np.random.default_rng([self.world.scenario.seed, 2, hour]).random(duty.size)
        on = draws[active] < duty[active]
        return np.where(on, 1 / duty[active], 0.0)

    def _callees(self, rng: np.random.Generator, line: np.ndarray, rank: np.ndarray) -> np.ndarray:
        lines, population = self.world.lines, self.world.population
        count = line.size
        strategy = lines.strategy[line]
        population_pick = population.codes[rng.integers(0, population.size, count)]
        target_count = lines.target_count[line]
        uniform = rng.random(count)
        # Collectors' lists are ordered debtor first: they favour the head. Other lists
        # (bought, leaked, a school's parents) are called evenly; a SEGMENTS line's list
        # holds its segments' bases: any of them, then any suffix.
        share = np.where(lines.source[line] == _DEBT_COLLECTION, uniform**2, uniform)
        target_index = lines.target_offset[line] + (target_count * share).astype(np.int64)
        targets = (
            lines.targets[np.minimum(target_index, max(lines.targets.size - 1, 0))]
            if (lines.targets.size)
            else population_pick
        )
        suffix = rng.integers(0, 10_000, count)
        sequential = lines.segment_base[line] + (self._cursor[line] + rank) % 10_000
        return np.select(
            [
                strategy == CalleeStrategy.TARGETS,
                strategy == CalleeStrategy.SEGMENT_SEQUENTIAL,
                strategy == CalleeStrategy.SEGMENT_RANDOM,
                strategy == CalleeStrategy.SEGMENTS,
            ],
            [targets, sequential, lines.segment_base[line] + suffix, targets + suffix],
            population_pick,
        )

    def _callbacks(self, rng: np.random.Generator, calls: Calls) -> Calls:
        """People return missed calls (and one-ring victims call the premium line)."""
        missed = (calls.disposition != ANSWERED) & (calls.callee > 0)
        returned = np.flatnonzero(missed & (rng.random(len(calls)) < calls.callback_rate))
        count = returned.size
        delay = rng.exponential(_CALLBACK_DELAY_MEAN_MS, count).astype(np.int64)
        return Calls(
            caller=calls.callee[returned],
            callee=calls.caller[returned],
            start_ms=calls.start_ms[returned]
            + (calls.ring_s[returned] * 1000).astype(np.int64)
            + 1000
            + delay,
            source=np.full(count, _CALLBACK, np.int8),
            campaign=np.full(count, -1, np.int32),
            outcome=calls.callback_outcome[returned],
            callback_rate=np.zeros(count),
            callback_outcome=calls.callback_outcome[returned],
        )

    def _complaints(self, rng: np.random.Generator, calls: Calls, hour_start: int) -> Complaints:
        settings = self.world.scenario.complaints
        nuisance = np.isin(calls.source, _NUISANCE_SOURCES)
        chance = np.where(
            calls.source == _ONE_RING,
            settings.one_ring_rate,
            np.where(calls.disposition == ANSWERED, settings.rate, 0.0),
        )
        reported = np.flatnonzero(nuisance & (rng.random(len(calls)) < chance))
        count = reported.size
        category = np.array([_CATEGORY_OF_SOURCE[s] for s in calls.source[reported]], np.int8)
        wrong = rng.random(count) < settings.mislabel_share
        category = np.where(
            wrong, (category + rng.integers(1, len(Category), count)) % len(Category), category
        ).astype(np.int8)
        call_end = calls.start_ms[reported] + (
            (calls.ring_s[reported] + calls.duration_s[reported]) * 1000
        ).astype(np.int64)
        genuine = Complaints(
            reporter=calls.callee[reported],
            reported=calls.caller[reported],
            category=category,
            time_ms=call_end + rng.exponential(_COMPLAINT_DELAY_MEAN_MS, count).astype(np.int64),
            is_noise=np.zeros(count, bool),
        )
        return Complaints.concat([genuine, self._noise(rng, count, hour_start)])

    def _noise(self, rng: np.random.Generator, genuine: int, hour_start: int) -> Complaints:
        """Wrong or malicious reports: against a contact, or a courier or bank line."""
        share = self.world.scenario.complaints.noise_share
        count = int(rng.poisson(genuine * share / (1 - share)))
        population = self.world.population
        reporters = rng.integers(0, population.size, count)
        offsets = population.contact_offsets
        degree = offsets[reporters + 1] - offsets[reporters]
        contact_row = np.minimum(
            offsets[reporters] + (degree * rng.random(count)).astype(np.int64),
            population.contacts.size - 1,
        )
        reported = population.codes[population.contacts[contact_row]]
        if self._legit_codes.size:
            legit = self._legit_codes[rng.integers(0, self._legit_codes.size, count)]
            reported = np.where(rng.random(count) < 0.5, legit, reported)
        return Complaints(
            reporter=population.codes[reporters],
            reported=reported,
            category=rng.integers(0, len(Category), count).astype(np.int8),
            time_ms=hour_start + rng.integers(0, HOUR_MS, count),
            is_noise=np.ones(count, bool),
        )
