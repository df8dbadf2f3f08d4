"""Campaign shapes: the ranges each nuisance campaign's behaviour is drawn from.

A campaign of a category does not behave one fixed way. Call centres dial
800 numbers a day per agent or 50; all day or in bursts; through one number
segment, several, a bought list of the whole population, or the same
debtors again and again; answer rates and talk times spread widely. Each
campaign therefore draws its own parameters from its category's
:class:`CampaignShape` (domain randomisation), so a model trained on one
scenario learns the category, not one way of running it.

A scenario *family* is a set of shapes. ``default`` uses
:data:`DEFAULT_SHAPES`; a scenario file replaces a category's shape under
``campaigns.shapes`` (``heldout.yaml`` replaces all six), and detection
quality is measured on a family that training never saw.

Figures come from ``/work/shared/DOMAIN.md`` where it has them (about 800
dials a day per call-centre agent; 11 of 20 bought numbers answered; one-ring
calls that never connect; 95/96/400 numbers rented by call centres; 170/171
and 165/167 virtual ranges) and are plausible ranges otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, TypeVar

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from simulator.categories import Category

__all__ = [
    "DEFAULT_SHAPES",
    "CalleeChoice",
    "CampaignShape",
    "DrawnShape",
    "NumberKind",
    "RhythmName",
    "draw_shape",
    "log_uniform",
    "weighted_choice",
]

RhythmName = Literal["office", "extended", "night", "people", "flat"]
CalleeChoice = Literal["population", "targets", "segment_sequential", "segment_random", "segments"]
NumberKind = Literal["mobile", "fixed", "special", "virtual", "international"]
_Name = TypeVar("_Name", bound=str)
_Bound = TypeVar("_Bound", int, float)


def _low_first(bounds: tuple[_Bound, _Bound]) -> tuple[_Bound, _Bound]:
    low, high = bounds
    if low > high:
        raise ValueError(f"a range is [low, high] with low <= high, got [{low}, {high}]")
    return bounds


_Positive = Annotated[float, Field(gt=0)]
_Share = Annotated[float, Field(ge=0, le=1)]
_Count = Annotated[int, Field(ge=1)]
Weight = Annotated[float, Field(ge=0)]
# [low, high] pairs, inclusive: rates and times are positive, shares within [0, 1].
Range = Annotated[tuple[_Positive, _Positive], AfterValidator(_low_first)]
ShareRange = Annotated[tuple[_Share, _Share], AfterValidator(_low_first)]
CountRange = Annotated[tuple[_Count, _Count], AfterValidator(_low_first)]


class CampaignShape(BaseModel):
    """Ranges one campaign's parameters are drawn from; ``[low, high]`` pairs are inclusive.

    Rates and times are drawn log-uniformly (a campaign is as likely to dial
    50-100 a day as 500-1000), shares and counts uniformly, names by their
    weights. ``burst_share`` is the chance a campaign dials in bursts: its
    lines are on in a share ``duty`` of the hours (drawn from
    ``burst_duty``) and dial ``1 / duty`` times faster then, so a day's
    volume stays the same. ``focus_share`` is the chance a campaign uses
    one kind of caller number only (one drawn from ``number_mix``) instead
    of the whole mix.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    calls_per_line_day: Range = Field(description="dials a day of one line (agent)")
    lines: CountRange = Field(description="agents, each presenting one caller number at a time")
    rotation_hours: Range = Field(description="hours an agent keeps a caller number")
    rhythms: dict[RhythmName, Weight] = Field(description="daily calling profiles, weighted")
    burst_share: _Share = Field(description="chance the campaign dials in bursts")
    burst_duty: ShareRange = Field(default=(0.15, 0.5), description="share of hours on in bursts")
    callees: dict[CalleeChoice, Weight] = Field(description="how callees are picked, weighted")
    targets: CountRange = Field(default=(15, 60), description="length of a target list")
    segments: CountRange = Field(default=(2, 8), description="number segments of 'segments'")
    answer_rate: ShareRange
    talk_median_s: Range = Field(description="median talk time of answered calls, seconds")
    ring_unanswered_median_s: Range = Field(
        default=(12.0, 30.0), description="median ring time before the caller gives up, seconds"
    )
    callback_rate: ShareRange = Field(default=(0.01, 0.05), description="missed calls returned")
    number_mix: dict[NumberKind, Weight] = Field(description="kinds of caller number, weighted")
    focus_share: _Share = Field(default=0.4, description="chance of one kind of number only")
    spoofed: bool = False

    @field_validator("rhythms", "callees", "number_mix")
    @classmethod
    def _some_weight(cls, weights: dict[str, float]) -> dict[str, float]:
        if sum(weights.values()) <= 0:
            raise ValueError("needs at least one positive weight")
        return weights

    @field_validator("burst_duty")
    @classmethod
    def _duty_positive(cls, duty: tuple[float, float]) -> tuple[float, float]:
        if duty[0] <= 0:
            raise ValueError("a bursty line is on in some hours: low must be above 0")
        return duty


@dataclass(frozen=True)
class DrawnShape:
    """One campaign's parameters, drawn from its :class:`CampaignShape`."""

    calls_per_line_day: float
    lines: int
    rotation_hours: tuple[float, float]
    rhythm: RhythmName
    duty: float  # share of hours the lines are on; 1 = steady
    callees: CalleeChoice
    targets: int
    segments: int
    answer_rate: float
    talk_median_s: float
    ring_unanswered_median_s: float
    callback_rate: float
    number_mix: dict[str, float]
    spoofed: bool


def draw_shape(shape: CampaignShape, rng: np.random.Generator) -> DrawnShape:
    """Draw one campaign's parameters."""
    bursty = rng.random() < shape.burst_share
    number_mix: dict[str, float] = {k: w for k, w in shape.number_mix.items() if w > 0}
    if rng.random() < shape.focus_share:
        number_mix = {weighted_choice(rng, number_mix): 1.0}
    return DrawnShape(
        calls_per_line_day=log_uniform(rng, shape.calls_per_line_day),
        lines=int(rng.integers(shape.lines[0], shape.lines[1] + 1)),
        rotation_hours=shape.rotation_hours,
        rhythm=weighted_choice(rng, shape.rhythms),
        duty=float(rng.uniform(*shape.burst_duty)) if bursty else 1.0,
        callees=weighted_choice(rng, shape.callees),
        targets=int(rng.integers(shape.targets[0], shape.targets[1] + 1)),
        segments=int(rng.integers(shape.segments[0], shape.segments[1] + 1)),
        answer_rate=float(rng.uniform(*shape.answer_rate)),
        talk_median_s=log_uniform(rng, shape.talk_median_s),
        ring_unanswered_median_s=log_uniform(rng, shape.ring_unanswered_median_s),
        callback_rate=float(rng.uniform(*shape.callback_rate)),
        number_mix=number_mix,
        spoofed=shape.spoofed,
    )


def log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A value between ``bounds`` whose logarithm is uniform."""
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def weighted_choice(rng: np.random.Generator, weights: dict[_Name, float]) -> _Name:
    """One key of ``weights``, chosen in proportion to its weight."""
    names = list(weights)
    values = np.array([weights[name] for name in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=values / values.sum()))]


# --- the default family ----------------------------------------------------------------
# Broad on purpose: every category spans the ways carriers and the press describe it
# being run, so a model trained on it cannot lean on any one of them.

# Call centres present ordinary mobiles and fixed lines and the 95/96/400 numbers they
# rent (DOMAIN.md); some buy virtual-operator numbers too.
_CALL_CENTRE_NUMBERS: dict[NumberKind, float] = {
    "mobile": 0.4,
    "fixed": 0.2,
    "special": 0.25,
    "virtual": 0.15,
}
# Segment dialling (号段: "1380013-0000, -0001..."), one segment or a few, lists of
# numbers bought or leaked from the whole population (10,000 Beijing numbers for 500
# yuan, DOMAIN.md), and now and then a short list of former customers.
_MARKETING_CALLEES: dict[CalleeChoice, float] = {
    "population": 0.3,
    "segment_sequential": 0.15,
    "segment_random": 0.2,
    "segments": 0.25,
    "targets": 0.1,
}
# Rules ask for set calling hours; many keep office hours, others long days or never stop.
_MARKETING_RHYTHMS: dict[RhythmName, float] = {
    "office": 0.45,
    "extended": 0.3,
    "people": 0.1,
    "flat": 0.15,
}

DEFAULT_SHAPES: dict[Category, CampaignShape] = {
    # Loans and wealth management (30.9% of 12321 reports): agents dial from a few dozen
    # to about a thousand a day (800 is typical, DOMAIN.md); pitches are short, a share
    # of people answer an unknown number (11 of 20 in one test) and most hang up early.
    Category.FINANCE_MARKETING: CampaignShape(
        calls_per_line_day=(10, 1000),
        lines=(1, 8),
        rotation_hours=(12, 96),
        rhythms=_MARKETING_RHYTHMS,
        burst_share=0.3,
        callees=_MARKETING_CALLEES,
        targets=(200, 3000),
        segments=(2, 10),
        answer_rate=(0.1, 0.65),
        talk_median_s=(6, 180),
        number_mix=_CALL_CENTRE_NUMBERS,
    ),
    # Insurance, education, recruitment, travel: run like loan marketing, a little
    # slower, with longer pitches (course and insurance sales talk longer).
    Category.OTHER_MARKETING: CampaignShape(
        calls_per_line_day=(20, 800),
        lines=(1, 6),
        rotation_hours=(12, 120),
        rhythms=_MARKETING_RHYTHMS,
        burst_share=0.3,
        callees=_MARKETING_CALLEES,
        targets=(200, 3000),
        segments=(2, 10),
        answer_rate=(0.1, 0.6),
        talk_median_s=(8, 120),
        number_mix=_CALL_CENTRE_NUMBERS,
    ),
    # Real-estate agents (14.0%): mostly on their own mobiles, which they keep for days,
    # calling owners in a compound (a list) or a segment, evenings and weekends too.
    Category.REAL_ESTATE: CampaignShape(
        calls_per_line_day=(8, 600),
        lines=(1, 6),
        rotation_hours=(24, 720),
        rhythms={"extended": 0.5, "office": 0.3, "people": 0.2},
        burst_share=0.25,
        callees=_MARKETING_CALLEES,
        targets=(100, 2000),
        answer_rate=(0.15, 0.7),
        talk_median_s=(10, 240),
        number_mix={"mobile": 0.75, "fixed": 0.2, "virtual": 0.05},
    ),
    # Illegal debt collection (21.0%): the debtor and everyone in the debtor's phone
    # book, called again and again, at any hour, from mobiles that change often;
    # sometimes a leaked book of strangers. Calls are longer (threats, demands), and
    # contacts call back to ask who it was.
    Category.DEBT_COLLECTION: CampaignShape(
        calls_per_line_day=(20, 300),
        lines=(1, 5),
        rotation_hours=(12, 120),
        rhythms={"extended": 0.45, "office": 0.2, "flat": 0.15, "night": 0.1, "people": 0.1},
        burst_share=0.4,
        callees={"targets": 0.85, "population": 0.15},
        targets=(8, 120),
        answer_rate=(0.1, 0.6),
        talk_median_s=(10, 180),
        callback_rate=(0.02, 0.15),
        number_mix={"mobile": 0.7, "fixed": 0.15, "virtual": 0.15},
    ),
    # One-ring (响一声; the largest class in 360's 2013-14 reports): autodiallers hang up
    # after about a ring, mostly at night, so almost nothing is answered and a few
    # people call the premium line back; numbers of every kind, international among them.
    Category.ONE_RING: CampaignShape(
        calls_per_line_day=(100, 3000),
        lines=(1, 4),
        rotation_hours=(2, 48),
        rhythms={"night": 0.45, "flat": 0.3, "extended": 0.15, "people": 0.1},
        burst_share=0.4,
        callees={
            "segment_random": 0.3,
            "segment_sequential": 0.15,
            "segments": 0.2,
            "population": 0.35,
        },
        answer_rate=(0.0, 0.02),
        talk_median_s=(1, 3),
        ring_unanswered_median_s=(0.8, 3.5),
        callback_rate=(0.02, 0.12),
        number_mix={"mobile": 0.3, "fixed": 0.2, "virtual": 0.25, "international": 0.25},
    ),
    # Fraud (impersonating police, banks, couriers, customer service): spoofed virtual
    # and international numbers (透传, DOMAIN.md) dropped within hours, calls to anyone
    # or to a leaked customer list, answered like any unknown number, long talks.
    Category.FRAUD: CampaignShape(
        calls_per_line_day=(8, 500),
        lines=(1, 6),
        rotation_hours=(1, 24),
        rhythms={"extended": 0.45, "flat": 0.2, "office": 0.15, "people": 0.1, "night": 0.1},
        burst_share=0.5,
        callees={"population": 0.55, "segments": 0.2, "segment_random": 0.15, "targets": 0.1},
        targets=(100, 2000),
        answer_rate=(0.15, 0.75),
        talk_median_s=(20, 1800),
        callback_rate=(0.005, 0.04),
        number_mix={"mobile": 0.25, "virtual": 0.4, "international": 0.25, "fixed": 0.1},
        spoofed=True,
    ),
}
