"""Dialler lines: nuisance campaigns' agents and legitimate bulk callers.

A line is one agent, driver or trunk presenting one caller number for a
while. Campaigns rotate their agents across fresh numbers (every few hours
for fraud, every few days for call centres); legitimate callers keep theirs.
"""

from __future__ import annotations

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
from simulator.profiles import LEGIT_SPECS, OUTCOMES, CalleeStrategy, LegitSpec, LogNormal, Outcome
from simulator.rhythm import DAILY, WEEKLY
from simulator.scenario import Scenario
from simulator.shapes import (
    DEFAULT_SHAPES,
    CalleeChoice,
    DrawnShape,
    draw_shape,
    log_uniform,
    weighted_choice,
)

__all__ = ["RHYTHMS", "Campaign", "Lines", "build_lines"]

_HOUR_MS = 3_600_000
_MOBILE_BASE = 86 * 10**11
# Platforms that may show a masked number (隐私号) instead of their driver's own.
_MASKED_KINDS = frozenset({LegitKind.COURIER, LegitKind.RIDE_HAILING})
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
    (daily, weekly) for daily in sorted(DAILY) for weekly in sorted(WEEKLY)
)
_STRATEGIES: dict[CalleeChoice, CalleeStrategy] = {
    "population": CalleeStrategy.POPULATION,
    "targets": CalleeStrategy.TARGETS,
    "segment_sequential": CalleeStrategy.SEGMENT_SEQUENTIAL,
    "segment_random": CalleeStrategy.SEGMENT_RANDOM,
    "segments": CalleeStrategy.SEGMENTS,
}
# The outcome template (unanswered split, ring and talk spread) of each category's calls.
_OUTCOME_TEMPLATE = {
    Category.FINANCE_MARKETING: "marketing",
    Category.OTHER_MARKETING: "marketing",
    Category.REAL_ESTATE: "marketing",
    Category.DEBT_COLLECTION: "collection",
    Category.ONE_RING: "one_ring",
    Category.FRAUD: "fraud",
}
_CALLBACK_OUTCOME = {
    category: ("premium_callback" if category is Category.ONE_RING else "nuisance_callback")
    for category in Category
}
_LEGIT_CALLBACK_OUTCOME = OUTCOME_NAMES.index("background")


@dataclass(frozen=True)
class Campaign:
    """One nuisance campaign, as the ground truth knows it, with the shape it drew."""

    campaign_id: int
    category: Category
    sector: str
    active_from_ms: int
    active_to_ms: int
    shape: DrawnShape


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
    duty: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _CallerPlan:
    """What every line of one caller (a campaign or a legitimate caller) shares."""

    source: int
    campaign: int
    rhythm: int
    outcome: int
    strategy: CalleeStrategy
    duty: float
    callback_rate: float
    callback_outcome: int
    spoofed: bool
    targets: tuple[int, int]


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
    outcome: np.ndarray  # index into OUTCOME_NAMES, then into drawn_outcomes
    strategy: np.ndarray  # CalleeStrategy
    segment_base: np.ndarray  # code of suffix 0000 of the dialled segment
    cursor: np.ndarray  # where sequential dialling starts in the segment
    target_offset: np.ndarray
    target_count: np.ndarray
    targets: np.ndarray  # callee codes of target lists; segment bases for SEGMENTS
    callback_rate: np.ndarray
    callback_outcome: np.ndarray
    spoofed: np.ndarray
    duty: np.ndarray  # share of hours a line is on (bursts); 1 = steady
    campaigns: tuple[Campaign, ...]
    # Outcomes drawn per caller: outcome id len(OUTCOME_NAMES) + i is drawn_outcomes[i].
    drawn_outcomes: tuple[Outcome, ...]

    @property
    def size(self) -> int:
        """Number of lines."""
        return int(self.code.size)


class _TargetLists:
    """All target lists end to end; a line keeps the offset and length of its own."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.total = 0

    def add(self, codes: np.ndarray) -> tuple[int, int]:
        self.parts.append(codes.astype(np.int64))
        self.total += codes.size
        return self.total - codes.size, codes.size

    def codes(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.empty(0, dtype=np.int64)


def build_lines(
    scenario: Scenario,
    population: Population,
    rng: np.random.Generator,
    allocator: NumberAllocator,
) -> Lines:
    """Plan every campaign's and legitimate caller's lines, then give them numbers."""
    rows = _LineRows()
    targets = _TargetLists()
    outcomes: list[Outcome] = []
    start_ms, hours = scenario.start_ms, scenario.hours
    privacy = scenario.legit.privacy_number_share
    for kind, count in scenario.legit.counts().items():
        spec = LEGIT_SPECS[kind]
        for _ in range(count):
            outcomes.append(_legit_outcome(spec, rng))
            plan = _CallerPlan(
                source=source_id(kind),
                campaign=-1,
                rhythm=_rhythm_index(weighted_choice(rng, spec.rhythms)),
                outcome=len(OUTCOME_NAMES) + len(outcomes) - 1,
                strategy=spec.callees,
                duty=1.0,
                callback_rate=float(rng.uniform(*spec.callback_rate)),
                callback_outcome=_LEGIT_CALLBACK_OUTCOME,
                spoofed=False,
                targets=_legit_targets(spec, population, rng, targets),
            )
            rate = log_uniform(rng, spec.calls_per_day)
            end_ms = start_ms + hours * _HOUR_MS
            number_kind = spec.number_kind
            # Drawn only with a share, so scenarios without one keep their random streams.
            if kind in _MASKED_KINDS and privacy > 0 and rng.random() < privacy:
                number_kind = "virtual"
            _add_line(rows, rng, plan, start_ms, end_ms, rate, population, number_kind)

    campaigns = []
    shapes = {**DEFAULT_SHAPES, **scenario.campaigns.shapes}
    # Shapes are written for agents dialling 800 a day; the scenario may scale them.
    rate_scale = scenario.campaigns.calls_per_agent_day / 800
    for campaign_id, category in enumerate(_campaign_categories(scenario, rng)):
        shape = draw_shape(shapes[category], rng)
        first_hour = int(rng.integers(0, max(1, hours * 3 // 10)))
        last_hour = hours - int(rng.integers(0, max(1, hours * 3 // 10)))
        campaign_from, campaign_to = (
            start_ms + first_hour * _HOUR_MS,
            start_ms + last_hour * _HOUR_MS,
        )
        sector = str(rng.choice(SECTORS[category]))
        campaigns.append(Campaign(campaign_id, category, sector, campaign_from, campaign_to, shape))
        outcomes.append(_campaign_outcome(category, shape))
        plan = _CallerPlan(
            source=source_id(category),
            campaign=campaign_id,
            rhythm=_rhythm_index(shape.rhythm),
            outcome=len(OUTCOME_NAMES) + len(outcomes) - 1,
            strategy=_STRATEGIES[shape.callees],
            duty=shape.duty,
            callback_rate=shape.callback_rate,
            callback_outcome=OUTCOME_NAMES.index(_CALLBACK_OUTCOME[category]),
            spoofed=shape.spoofed,
            targets=_campaign_targets(shape, category, population, rng, targets),
        )
        for _agent in range(shape.lines):
            agent_rate = shape.calls_per_line_day * rate_scale * rng.lognormal(0, 0.2)
            line_from = campaign_from
            while line_from < campaign_to:
                held_hours = max(1, round(rng.uniform(*shape.rotation_hours)))
                line_to = min(campaign_to, line_from + held_hours * _HOUR_MS)
                number_kind = weighted_choice(rng, shape.number_mix)
                _add_line(rows, rng, plan, line_from, line_to, agent_rate, population, number_kind)
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
        outcome=np.array(rows.outcome, dtype=np.int32),
        strategy=np.array(rows.strategy, dtype=np.int8),
        segment_base=np.array(rows.segment_base, dtype=np.int64),
        cursor=rng.integers(0, 10_000, size=len(rows.source)),
        target_offset=np.array(rows.target_offset, dtype=np.int64),
        target_count=np.array(rows.target_count, dtype=np.int64),
        targets=targets.codes(),
        callback_rate=np.array(rows.callback_rate, dtype=np.float64),
        callback_outcome=np.array(rows.callback_outcome, dtype=np.int8),
        spoofed=np.array(rows.spoofed, dtype=bool),
        duty=np.array(rows.duty, dtype=np.float64),
        campaigns=tuple(campaigns),
        drawn_outcomes=tuple(outcomes),
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


def _add_line(
    rows: _LineRows,
    rng: np.random.Generator,
    plan: _CallerPlan,
    active_from_ms: int,
    active_to_ms: int,
    calls_per_day: float,
    population: Population,
    number_kind: str,
) -> None:
    # Segment diallers work mostly through the segments where the population lives.
    if rng.random() < 0.7:
        segment = int(population.segments[rng.integers(0, population.segments.size)])
    else:
        segment = int(mobile_segments(rng, 1)[0])
    rows.number_kind.append(number_kind)
    rows.source.append(plan.source)
    rows.campaign.append(plan.campaign)
    rows.active_from_ms.append(active_from_ms)
    rows.active_to_ms.append(active_to_ms)
    rows.calls_per_day.append(float(calls_per_day))
    rows.rhythm.append(plan.rhythm)
    rows.outcome.append(plan.outcome)
    rows.strategy.append(int(plan.strategy))
    rows.segment_base.append(_MOBILE_BASE + segment * 10_000)
    rows.target_offset.append(plan.targets[0])
    rows.target_count.append(plan.targets[1])
    rows.callback_rate.append(plan.callback_rate)
    rows.callback_outcome.append(plan.callback_outcome)
    rows.spoofed.append(plan.spoofed)
    rows.duty.append(plan.duty)


def _rhythm_index(daily: str) -> int:
    """Office hours keep to weekdays; every other profile runs every day."""
    return RHYTHMS.index((daily, "weekdays" if daily == "office" else "every_day"))


def _with_answer_and_talk(
    template: Outcome, answer_rate: float, talk_median_s: float, ring_unanswered_median_s: float
) -> Outcome:
    """``template`` with another answer rate and medians; clipping bounds widen to fit them."""
    ring, talk = template.ring_unanswered, template.talk
    return Outcome(
        answer_rate,
        template.unanswered_split,
        template.ring_answered,
        LogNormal(
            ring_unanswered_median_s,
            ring.sigma,
            min(ring.low, ring_unanswered_median_s / 3),
            max(ring.high, ring_unanswered_median_s * 3),
        ),
        LogNormal(talk_median_s, talk.sigma, talk.low, max(talk.high, talk_median_s * 3)),
    )


def _campaign_outcome(category: Category, shape: DrawnShape) -> Outcome:
    """The category's outcome template with the campaign's answer rate, ring and talk times."""
    return _with_answer_and_talk(
        OUTCOMES[_OUTCOME_TEMPLATE[category]],
        shape.answer_rate,
        shape.talk_median_s,
        shape.ring_unanswered_median_s,
    )


def _legit_outcome(spec: LegitSpec, rng: np.random.Generator) -> Outcome:
    """The kind's outcome template with this caller's answer rate and talk time."""
    template = OUTCOMES[spec.outcome]
    return _with_answer_and_talk(
        template,
        float(rng.uniform(*spec.answer_rate)),
        log_uniform(rng, spec.talk_median_s),
        template.ring_unanswered.median,
    )


def _legit_targets(
    spec: LegitSpec, population: Population, rng: np.random.Generator, targets: _TargetLists
) -> tuple[int, int]:
    """A school's parents or a company's clients: people spread over the population."""
    if spec.callees is not CalleeStrategy.TARGETS:
        return 0, 0
    wanted = min(int(rng.integers(spec.targets[0], spec.targets[1] + 1)), population.size)
    return targets.add(population.codes[rng.choice(population.size, wanted, replace=False)])


def _campaign_targets(
    shape: DrawnShape,
    category: Category,
    population: Population,
    rng: np.random.Generator,
    targets: _TargetLists,
) -> tuple[int, int]:
    """The campaign's list: debtors and their contacts, a bought list, or segment bases."""
    if shape.callees == "segments":
        chosen = rng.choice(
            population.segments.size, min(shape.segments, population.segments.size), replace=False
        )
        return targets.add(_MOBILE_BASE + population.segments[chosen].astype(np.int64) * 10_000)
    if shape.callees != "targets":
        return 0, 0
    wanted = min(shape.targets, population.size)
    if category is not Category.DEBT_COLLECTION:
        return targets.add(population.codes[rng.choice(population.size, wanted, replace=False)])
    # Illegal collectors call the debtor, then everyone in the debtor's phone book.
    debtor_count = max(1, wanted // 4)
    debtors = rng.choice(population.size, debtor_count, replace=False)
    contacts = [
        population.contacts[population.contact_offsets[d] : population.contact_offsets[d + 1]]
        for d in debtors
    ]
    people = np.concatenate([debtors, *contacts])[:wanted]
    return targets.add(population.codes[people])


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
