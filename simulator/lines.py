"""Dialler lines: nuisance campaigns' agents and legitimate bulk callers.

A line is one agent, driver or trunk presenting one caller number for a
while. Campaigns rotate their agents across fresh numbers (every few hours
for fraud, every few days for call centres); legitimate callers keep theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simulator.categories import SECTORS, Category, LegitKind, source_id
from simulator.numbering import (
    Draw,
    NumberAllocator,
    fixed_numbers,
    international_numbers,
    mobile_numbers,
    mobile_segments,
    special_numbers,
    virtual_operator_numbers,
)
from simulator.outcomes import OUTCOME_NAMES
from simulator.population import Population
from simulator.profiles import CAMPAIGN_SPECS, LEGIT_SPECS, CalleeStrategy, DialerSpec
from simulator.scenario import Scenario

__all__ = ["RHYTHMS", "Campaign", "Lines", "build_lines"]

_HOUR_MS = 3_600_000
_MOBILE_BASE = 86 * 10**11
# Well-known numbers of legitimate services, used before random ones of the same shape.
_KNOWN_SERVICE = {
    LegitKind.BANK_SERVICE: (95588, 95533, 95599, 95566, 95559, 95555, 95558, 95568, 95528),
    LegitKind.UTILITY_SERVICE: (95598, 96777, 96116, 95338),
    LegitKind.GOVERNMENT_HOTLINE: (12345, 12315, 12369, 12333, 12366),
}
_DRAWS = {
    "mobile": lambda rng, n: mobile_numbers(rng, n),
    "fixed": fixed_numbers,
    "special": special_numbers,
    "virtual": virtual_operator_numbers,
    "international": international_numbers,
}
RHYTHMS: tuple[tuple[str, str], ...] = tuple(
    sorted(
        {(spec.daily, spec.weekly) for spec in [*CAMPAIGN_SPECS.values(), *LEGIT_SPECS.values()]}
    )
)


@dataclass(frozen=True)
class Campaign:
    """One nuisance campaign, as the ground truth knows it."""

    campaign_id: int
    category: Category
    sector: str
    active_from_ms: int
    active_to_ms: int


@dataclass
class _LineRows:
    """Lines as they are planned, one list entry each; numbers come last, per kind."""

    number_kind: list[str] = field(default_factory=list)
    source: list[int] = field(default_factory=list)
    campaign: list[int] = field(default_factory=list)
    active_from_ms: list[int] = field(default_factory=list)
    active_to_ms: list[int] = field(default_factory=list)
    calls_per_day: list[float] = field(default_factory=list)
    rhythm: list[int] = field(default_factory=list)
    outcome: list[int] = field(default_factory=list)
    strategy: list[int] = field(default_factory=list)
    segment_base: list[int] = field(default_factory=list)
    target_offset: list[int] = field(default_factory=list)
    target_count: list[int] = field(default_factory=list)
    callback_rate: list[float] = field(default_factory=list)
    callback_outcome: list[int] = field(default_factory=list)
    spoofed: list[bool] = field(default_factory=list)


@dataclass(frozen=True)
class Lines:
    """All dialler lines as arrays, one row per line."""

    code: np.ndarray
    source: np.ndarray
    campaign: np.ndarray  # -1 for legitimate callers
    active_from_ms: np.ndarray
    active_to_ms: np.ndarray
    calls_per_day: np.ndarray
    rhythm: np.ndarray  # index into RHYTHMS
    outcome: np.ndarray  # index into OUTCOME_NAMES
    strategy: np.ndarray  # CalleeStrategy
    segment_base: np.ndarray  # code of suffix 0000 of the dialled segment
    cursor: np.ndarray  # where sequential dialling starts in the segment
    target_offset: np.ndarray
    target_count: np.ndarray
    targets: np.ndarray  # callee codes of target lists
    callback_rate: np.ndarray
    callback_outcome: np.ndarray
    spoofed: np.ndarray
    campaigns: tuple[Campaign, ...]

    @property
    def size(self) -> int:
        """Number of lines."""
        return int(self.code.size)


def build_lines(
    scenario: Scenario,
    population: Population,
    rng: np.random.Generator,
    allocator: NumberAllocator,
) -> Lines:
    """Plan every campaign's and legitimate caller's lines, then give them numbers."""
    rows = _LineRows()
    targets: list[np.ndarray] = []
    target_total = 0

    def add_targets(codes: np.ndarray) -> tuple[int, int]:
        nonlocal target_total
        targets.append(codes)
        target_total += codes.size
        return target_total - codes.size, codes.size

    start_ms, hours = scenario.start_ms, scenario.hours
    for kind, count in scenario.legit.counts().items():
        spec = LEGIT_SPECS[kind]
        for _ in range(count):
            offset_count = _draw_targets(spec, population, rng, add_targets, debtors=False)
            _add_line(
                rows,
                rng,
                spec,
                source_id(kind),
                -1,
                start_ms,
                start_ms + hours * _HOUR_MS,
                spec.calls_per_line_day * rng.lognormal(0, 0.25),
                population,
                offset_count,
                _pick_kind(rng, spec),
            )

    campaigns = []
    for campaign_id, category in enumerate(_campaign_categories(scenario, rng)):
        spec = CAMPAIGN_SPECS[category]
        first_hour = int(rng.integers(0, max(1, hours * 3 // 10)))
        last_hour = hours - int(rng.integers(0, max(1, hours * 3 // 10)))
        campaign_from, campaign_to = (
            start_ms + first_hour * _HOUR_MS,
            start_ms + last_hour * _HOUR_MS,
        )
        campaigns.append(
            Campaign(
                campaign_id,
                category,
                str(rng.choice(SECTORS[category])),
                campaign_from,
                campaign_to,
            )
        )
        calls_per_day = spec.calls_per_line_day
        if spec.callees != (CalleeStrategy.TARGETS,) and spec.calls_per_line_day >= 500:
            calls_per_day *= scenario.campaigns.calls_per_agent_day / 800  # call-centre agents
        strategy = CalleeStrategy(int(rng.choice(spec.callees)))
        offset_count = _draw_targets(spec, population, rng, add_targets, debtors=True)
        for _agent in range(int(rng.integers(spec.lines[0], spec.lines[1] + 1))):
            agent_rate = calls_per_day * rng.lognormal(0, 0.2)
            line_from = campaign_from
            while line_from < campaign_to:
                assert spec.rotation_hours is not None
                held_hours = max(1, round(rng.uniform(*spec.rotation_hours)))
                line_to = min(campaign_to, line_from + held_hours * _HOUR_MS)
                _add_line(
                    rows,
                    rng,
                    spec,
                    source_id(category),
                    campaign_id,
                    line_from,
                    line_to,
                    agent_rate,
                    population,
                    offset_count,
                    _pick_kind(rng, spec),
                    strategy=strategy,
                )
                line_from = line_to

    codes = _allocate_numbers(rows.number_kind, scenario, rng, allocator)
    return Lines(
        code=codes,
        source=np.array(rows.source, dtype=np.int8),
        campaign=np.array(rows.campaign, dtype=np.int32),
        active_from_ms=np.array(rows.active_from_ms, dtype=np.int64),
        active_to_ms=np.array(rows.active_to_ms, dtype=np.int64),
        calls_per_day=np.array(rows.calls_per_day, dtype=np.float64),
        rhythm=np.array(rows.rhythm, dtype=np.int8),
        outcome=np.array(rows.outcome, dtype=np.int8),
        strategy=np.array(rows.strategy, dtype=np.int8),
        segment_base=np.array(rows.segment_base, dtype=np.int64),
        cursor=rng.integers(0, 10_000, size=len(rows.source)),
        target_offset=np.array(rows.target_offset, dtype=np.int64),
        target_count=np.array(rows.target_count, dtype=np.int64),
        targets=np.concatenate(targets) if targets else np.empty(0, dtype=np.int64),
        callback_rate=np.array(rows.callback_rate, dtype=np.float64),
        callback_outcome=np.array(rows.callback_outcome, dtype=np.int8),
        spoofed=np.array(rows.spoofed, dtype=bool),
        campaigns=tuple(campaigns),
    )


def _campaign_categories(scenario: Scenario, rng: np.random.Generator) -> list[Category]:
    """Categories by largest remainder, so small runs still follow the mix, then shuffled."""
    mix = scenario.campaigns.mix
    count = scenario.campaigns.count
    total = sum(mix.values())
    if count == 0 or total <= 0:
        return []
    exact = {category: count * weight / total for category, weight in mix.items()}
    counts = {category: int(share) for category, share in exact.items()}
    by_remainder = sorted(exact, key=lambda c: (counts[c] - exact[c], list(Category).index(c)))
    for category in by_remainder[: count - sum(counts.values())]:
        counts[category] += 1
    ordered = [category for category in Category for _ in range(counts.get(category, 0))]
    return [ordered[i] for i in rng.permutation(len(ordered))]


def _pick_kind(rng: np.random.Generator, spec: DialerSpec) -> str:
    kinds = list(spec.number_mix)
    weights = np.array(list(spec.number_mix.values()))
    return kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]


def _draw_targets(
    spec: DialerSpec,
    population: Population,
    rng: np.random.Generator,
    add_targets: Callable[[np.ndarray], tuple[int, int]],
    *,
    debtors: bool,
) -> tuple[int, int]:
    """A target list: debtors and their contacts for collectors, random people otherwise."""
    if CalleeStrategy.TARGETS not in spec.callees:
        return 0, 0
    wanted = min(int(rng.integers(spec.targets[0], spec.targets[1] + 1)), population.size)
    if not debtors:
        return add_targets(population.codes[rng.choice(population.size, wanted, replace=False)])
    # Illegal collectors call the debtor, then everyone in the debtor's phone book.
    debtor_count = max(1, wanted // 4)
    debtors_idx = rng.choice(population.size, debtor_count, replace=False)
    contacts = [
        population.contacts[population.contact_offsets[d] : population.contact_offsets[d + 1]]
        for d in debtors_idx
    ]
    people = np.concatenate([debtors_idx, *contacts])[:wanted]
    return add_targets(population.codes[people])


def _add_line(
    rows: _LineRows,
    rng: np.random.Generator,
    spec: DialerSpec,
    source: int,
    campaign: int,
    active_from_ms: int,
    active_to_ms: int,
    calls_per_day: float,
    population: Population,
    target_offset_count: tuple[int, int],
    number_kind: str,
    strategy: CalleeStrategy | None = None,
) -> None:
    strategy = spec.callees[0] if strategy is None else strategy
    # Segment diallers work mostly through the segments where the population lives.
    if rng.random() < 0.7:
        segment = int(population.segments[rng.integers(0, population.segments.size)])
    else:
        segment = int(mobile_segments(rng, 1)[0])
    rows.number_kind.append(number_kind)
    rows.source.append(source)
    rows.campaign.append(campaign)
    rows.active_from_ms.append(active_from_ms)
    rows.active_to_ms.append(active_to_ms)
    rows.calls_per_day.append(float(calls_per_day))
    rows.rhythm.append(RHYTHMS.index((spec.daily, spec.weekly)))
    rows.outcome.append(OUTCOME_NAMES.index(spec.outcome))
    rows.strategy.append(int(strategy))
    rows.segment_base.append(_MOBILE_BASE + segment * 10_000)
    rows.target_offset.append(target_offset_count[0])
    rows.target_count.append(target_offset_count[1])
    rows.callback_rate.append(spec.callback_rate)
    rows.callback_outcome.append(OUTCOME_NAMES.index(spec.callback_outcome))
    rows.spoofed.append(spec.spoofed)


def _allocate_numbers(
    kinds: list[str], scenario: Scenario, rng: np.random.Generator, allocator: NumberAllocator
) -> np.ndarray:
    """One fresh number per line, drawn per kind in one go; service lines get known numbers."""
    kind_array = np.array(kinds, dtype=object)
    codes = np.zeros(len(kinds), dtype=np.int64)
    legit_counts = scenario.legit.counts()
    position = 0
    for kind, count in legit_counts.items():
        if kind in _KNOWN_SERVICE:
            known = np.array(_KNOWN_SERVICE[kind][:count], dtype=np.int64)
            allocator.reserve(-known)
            extra = allocator.take(_same_block_as(_KNOWN_SERVICE[kind][0]), rng, count - known.size)
            codes[position : position + count] = np.concatenate([-known, extra])
            kind_array[position : position + count] = "assigned"
        position += count
    for number_kind, draw in _DRAWS.items():
        wanted = np.flatnonzero(kind_array == number_kind)
        if wanted.size:
            codes[wanted] = allocator.take(draw, rng, wanted.size)
    return codes


def _same_block_as(known: int) -> Draw:
    """Random short numbers in the thousand-block of ``known`` (95xxx, 12xxx)."""

    def draw(rng: np.random.Generator, count: int) -> np.ndarray:
        return -(known // 1000 * 1000 + rng.integers(0, 1000, count))

    return draw
