"""How calls end, how diallers pick callees, and what legitimate bulk callers do.

:data:`OUTCOMES` are templates of how calls of each kind end; nuisance
campaigns (:mod:`simulator.shapes`) and legitimate bulk callers
(:data:`LEGIT_SPECS`) keep a template's split of unanswered calls and ring
times and draw their own answer rate and talk time. Figures come from
``/work/shared/DOMAIN.md`` where it has them (one-ring calls that never
connect) and are plausible guesses otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from simulator.categories import LegitKind

__all__ = [
    "LEGIT_SPECS",
    "OUTCOMES",
    "CalleeStrategy",
    "LegitSpec",
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
    SEGMENTS = 4  # random suffixes inside a few segments (the target list holds their bases)


@dataclass(frozen=True)
class LegitSpec:
    """One kind of legitimate bulk caller; each caller draws its own figures from the ranges.

    Rates and talk medians are drawn log-uniformly, shares uniformly.
    Legitimate bulk callers call people who asked for it or expect it: their
    calls are answered often and returned when missed, spread over the
    population (or a list of their own parents, patients or clients), in
    working hours. ``number_kind`` is ``mobile``, ``fixed``, ``service``
    (955xx/96xxx) or ``hotline`` (123xx).
    """

    calls_per_day: tuple[float, float]
    rhythms: dict[str, float]  # daily profile -> weight
    outcome: str  # template in OUTCOMES: split of unanswered calls, ring times
    answer_rate: tuple[float, float]
    talk_median_s: tuple[float, float]
    callback_rate: tuple[float, float]
    callees: CalleeStrategy
    number_kind: str
    targets: tuple[int, int] = (0, 0)


LEGIT_SPECS: dict[LegitKind, LegitSpec] = {
    # Banks' outbound teams from 95xxx: card and loan notices, fraud checks, a few
    # thousand calls a day per number, every day; customers answer a known number.
    LegitKind.BANK_SERVICE: LegitSpec(
        (800, 4000),
        {"extended": 0.7, "office": 0.3},
        "service_outbound",
        (0.55, 0.8),
        (30, 120),
        (0.05, 0.15),
        CalleeStrategy.POPULATION,
        "service",
    ),
    # Power, gas and water companies: arrears and outage notices in office hours.
    LegitKind.UTILITY_SERVICE: LegitSpec(
        (300, 2000),
        {"office": 0.8, "extended": 0.2},
        "service_outbound",
        (0.55, 0.8),
        (25, 90),
        (0.05, 0.15),
        CalleeStrategy.POPULATION,
        "service",
    ),
    # Couriers ring each recipient before delivery: dozens to a few hundred a day,
    # nearly always answered, very short, often returned.
    LegitKind.COURIER: LegitSpec(
        (40, 250),
        {"extended": 0.8, "office": 0.2},
        "courier",
        (0.8, 0.93),
        (10, 35),
        (0.2, 0.45),
        CalleeStrategy.POPULATION,
        "mobile",
    ),
    # Ride-hailing drivers call the passenger who booked: commuting peaks.
    LegitKind.RIDE_HAILING: LegitSpec(
        (10, 60),
        {"rides": 1.0},
        "ride",
        (0.85, 0.95),
        (12, 40),
        (0.2, 0.45),
        CalleeStrategy.POPULATION,
        "mobile",
    ),
    # Schools and hospitals: notices to their own parents and patients, office hours.
    LegitKind.SCHOOL_HOSPITAL: LegitSpec(
        (100, 800),
        {"office": 1.0},
        "notice",
        (0.6, 0.85),
        (25, 90),
        (0.05, 0.2),
        CalleeStrategy.TARGETS,
        "fixed",
        targets=(300, 1500),
    ),
    # 12345 and its kin return citizens' calls with answers: long calls.
    LegitKind.GOVERNMENT_HOTLINE: LegitSpec(
        (300, 1000),
        {"office": 0.7, "extended": 0.3},
        "hotline_callback",
        (0.6, 0.8),
        (90, 300),
        (0.03, 0.1),
        CalleeStrategy.POPULATION,
        "hotline",
    ),
    # Company switchboards calling their clients and suppliers: long business calls.
    LegitKind.ENTERPRISE_SWITCHBOARD: LegitSpec(
        (80, 500),
        {"office": 1.0},
        "enterprise",
        (0.78, 0.92),
        (120, 400),
        (0.1, 0.3),
        CalleeStrategy.TARGETS,
        "fixed",
        targets=(100, 400),
    ),
}
