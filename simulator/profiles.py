"""The behaviour specification of every kind of caller: volumes, rhythms, outcomes.

These tables are the "specification" the statistical tests check the
generated traffic against. Figures come from ``/work/shared/DOMAIN.md``
where it has them (800 dials a day per call-centre agent, one-ring calls
that never connect) and are plausible guesses otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from simulator.categories import Category, LegitKind

__all__ = [
    "CAMPAIGN_SPECS",
    "LEGIT_SPECS",
    "OUTCOMES",
    "CalleeStrategy",
    "DialerSpec",
    "LogNormal",
    "Outcome",
]


@dataclass(frozen=True)
class LogNormal:
    """A clipped log-normal distribution of seconds, given by its median."""

    median: float
    sigma: float
    low: float
    high: float


@dataclass(frozen=True)
class Outcome:
    """How calls of one kind end.

    ``answer`` is the answer rate; the unanswered rest splits into no answer,
    busy, rejected and failed in the ratio ``unanswered_split``.
    """

    answer: float
    unanswered_split: tuple[float, float, float, float]
    ring_answered: LogNormal
    ring_unanswered: LogNormal
    talk: LogNormal


_RING_PEOPLE = LogNormal(7.0, 0.45, 1.0, 45.0)
_RING_TIMEOUT = LogNormal(28.0, 0.3, 5.0, 60.0)

OUTCOMES: dict[str, Outcome] = {
    # Background answer rate is the scenario's; this entry is its template.
    "background": Outcome(
        0.75, (0.6, 0.15, 0.2, 0.05), _RING_PEOPLE, _RING_TIMEOUT, LogNormal(75, 1.1, 1, 7200)
    ),
    "marketing": Outcome(
        0.30,
        (0.45, 0.05, 0.45, 0.05),
        LogNormal(9, 0.4, 2, 40),
        LogNormal(18, 0.5, 2, 60),
        LogNormal(22, 0.9, 1, 900),
    ),
    "collection": Outcome(
        0.35,
        (0.4, 0.05, 0.5, 0.05),
        LogNormal(9, 0.4, 2, 40),
        LogNormal(25, 0.4, 3, 60),
        LogNormal(55, 0.8, 1, 1200),
    ),
    # The caller hangs up after about one ring: never answered, never rejected.
    "one_ring": Outcome(
        0.0,
        (0.95, 0.02, 0.0, 0.03),
        _RING_PEOPLE,
        LogNormal(1.5, 0.3, 0.3, 3.5),
        LogNormal(1, 0.1, 1, 1),
    ),
    "fraud": Outcome(
        0.35,
        (0.5, 0.05, 0.4, 0.05),
        LogNormal(8, 0.4, 2, 40),
        LogNormal(25, 0.4, 3, 60),
        LogNormal(80, 1.2, 1, 3600),
    ),
    "service_outbound": Outcome(
        0.65, (0.6, 0.1, 0.25, 0.05), _RING_PEOPLE, _RING_TIMEOUT, LogNormal(60, 0.7, 5, 1200)
    ),
    "courier": Outcome(
        0.85,
        (0.6, 0.15, 0.2, 0.05),
        LogNormal(6, 0.4, 1, 40),
        _RING_TIMEOUT,
        LogNormal(20, 0.6, 3, 300),
    ),
    "ride": Outcome(
        0.90,
        (0.6, 0.15, 0.2, 0.05),
        LogNormal(5, 0.4, 1, 40),
        _RING_TIMEOUT,
        LogNormal(25, 0.6, 3, 300),
    ),
    "notice": Outcome(
        0.70, (0.7, 0.1, 0.15, 0.05), _RING_PEOPLE, _RING_TIMEOUT, LogNormal(40, 0.4, 10, 180)
    ),
    "hotline_callback": Outcome(
        0.70, (0.7, 0.1, 0.15, 0.05), _RING_PEOPLE, _RING_TIMEOUT, LogNormal(150, 0.6, 20, 1800)
    ),
    "enterprise": Outcome(
        0.85, (0.6, 0.2, 0.15, 0.05), _RING_PEOPLE, _RING_TIMEOUT, LogNormal(240, 0.9, 10, 7200)
    ),
    # A victim calling a one-ring number back reaches a premium line that answers.
    "premium_callback": Outcome(
        0.95,
        (0.8, 0.1, 0.0, 0.1),
        LogNormal(3, 0.3, 1, 10),
        _RING_TIMEOUT,
        LogNormal(45, 0.7, 5, 600),
    ),
    # Someone calling a marketing number back gets an IVR or an agent, briefly.
    "nuisance_callback": Outcome(
        0.5,
        (0.8, 0.1, 0.0, 0.1),
        LogNormal(4, 0.4, 1, 20),
        _RING_TIMEOUT,
        LogNormal(15, 0.8, 1, 300),
    ),
}


class CalleeStrategy(IntEnum):
    """How a dialler picks whom to call."""

    POPULATION = 0  # anyone among the subscribers (customers, leaked lists)
    TARGETS = 1  # a fixed small list, again and again
    SEGMENT_SEQUENTIAL = 2  # 1380013-0000, -0001, -0002... through a number segment
    SEGMENT_RANDOM = 3  # random suffixes inside a number segment


@dataclass(frozen=True)
class DialerSpec:
    """One kind of high-volume caller: each line is one agent, driver or trunk.

    ``number_mix`` gives the shares of caller number kinds: ``mobile``,
    ``fixed``, ``special`` (95/96/400 lines), ``virtual`` (170/171/165/167
    virtual operators) and ``international``.
    """

    calls_per_line_day: float
    lines: tuple[int, int]
    rotation_hours: tuple[float, float] | None
    daily: str
    weekly: str
    outcome: str
    callees: tuple[CalleeStrategy, ...]
    number_mix: dict[str, float]
    targets: tuple[int, int] = (0, 0)
    callback_rate: float = 0.0
    callback_outcome: str = "background"
    spoofed: bool = False


_SEGMENTS = (CalleeStrategy.SEGMENT_SEQUENTIAL, CalleeStrategy.SEGMENT_RANDOM)

CAMPAIGN_SPECS: dict[Category, DialerSpec] = {
    Category.FINANCE_MARKETING: DialerSpec(
        800,
        (3, 12),
        (24, 72),
        "office",
        "weekdays",
        "marketing",
        _SEGMENTS,
        {"mobile": 0.45, "fixed": 0.25, "special": 0.30},
        callback_rate=0.02,
        callback_outcome="nuisance_callback",
    ),
    Category.OTHER_MARKETING: DialerSpec(
        700,
        (2, 10),
        (24, 72),
        "office",
        "weekdays",
        "marketing",
        _SEGMENTS,
        {"mobile": 0.45, "fixed": 0.25, "special": 0.30},
        callback_rate=0.02,
        callback_outcome="nuisance_callback",
    ),
    Category.REAL_ESTATE: DialerSpec(
        600,
        (2, 8),
        (24, 96),
        "extended",
        "every_day",
        "marketing",
        _SEGMENTS,
        {"mobile": 0.7, "fixed": 0.3},
        callback_rate=0.02,
        callback_outcome="nuisance_callback",
    ),
    Category.DEBT_COLLECTION: DialerSpec(
        80,
        (2, 5),
        (12, 48),
        "extended",
        "every_day",
        "collection",
        (CalleeStrategy.TARGETS,),
        {"mobile": 0.85, "fixed": 0.15},
        targets=(15, 40),
        callback_rate=0.05,
        callback_outcome="nuisance_callback",
    ),
    Category.ONE_RING: DialerSpec(
        2500,
        (1, 4),
        (6, 24),
        "night",
        "every_day",
        "one_ring",
        (CalleeStrategy.SEGMENT_RANDOM,),
        {"mobile": 0.4, "fixed": 0.3, "virtual": 0.2, "international": 0.1},
        callback_rate=0.06,
        callback_outcome="premium_callback",
    ),
    Category.FRAUD: DialerSpec(
        150,
        (2, 6),
        (4, 12),
        "extended",
        "every_day",
        "fraud",
        (CalleeStrategy.POPULATION,),
        {"mobile": 0.2, "virtual": 0.5, "international": 0.3},
        callback_rate=0.01,
        callback_outcome="nuisance_callback",
        spoofed=True,
    ),
}

LEGIT_SPECS: dict[LegitKind, DialerSpec] = {
    LegitKind.BANK_SERVICE: DialerSpec(
        2500,
        (1, 1),
        None,
        "extended",
        "every_day",
        "service_outbound",
        (CalleeStrategy.POPULATION,),
        {"service": 1.0},
        callback_rate=0.1,
    ),
    LegitKind.UTILITY_SERVICE: DialerSpec(
        1200,
        (1, 1),
        None,
        "office",
        "weekdays",
        "service_outbound",
        (CalleeStrategy.POPULATION,),
        {"service": 1.0},
        callback_rate=0.1,
    ),
    LegitKind.COURIER: DialerSpec(
        120,
        (1, 1),
        None,
        "extended",
        "every_day",
        "courier",
        (CalleeStrategy.POPULATION,),
        {"mobile": 1.0},
        callback_rate=0.3,
    ),
    LegitKind.RIDE_HAILING: DialerSpec(
        30,
        (1, 1),
        None,
        "rides",
        "every_day",
        "ride",
        (CalleeStrategy.POPULATION,),
        {"mobile": 1.0},
        callback_rate=0.3,
    ),
    LegitKind.SCHOOL_HOSPITAL: DialerSpec(
        400,
        (1, 1),
        None,
        "office",
        "weekdays",
        "notice",
        (CalleeStrategy.TARGETS,),
        {"fixed": 1.0},
        targets=(300, 1500),
        callback_rate=0.1,
    ),
    LegitKind.GOVERNMENT_HOTLINE: DialerSpec(
        600,
        (1, 1),
        None,
        "office",
        "weekdays",
        "hotline_callback",
        (CalleeStrategy.POPULATION,),
        {"hotline": 1.0},
        callback_rate=0.05,
    ),
    LegitKind.ENTERPRISE_SWITCHBOARD: DialerSpec(
        250,
        (1, 1),
        None,
        "office",
        "weekdays",
        "enterprise",
        (CalleeStrategy.TARGETS,),
        {"fixed": 1.0},
        targets=(100, 400),
        callback_rate=0.2,
    ),
}
