"""Scenario files: every knob of a simulation run, validated before it starts.

A scenario is YAML or TOML. Unknown fields, wrong types and out-of-range
values fail with :class:`ScenarioError`, whose message names each bad field
by its dotted path and says what is expected.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.categories import DEFAULT_MIX, Category, LegitKind
from simulator.shapes import CampaignShape

__all__ = [
    "CampaignSettings",
    "ComplaintSettings",
    "LegitSettings",
    "OutputSettings",
    "Scenario",
    "ScenarioError",
    "SubscriberSettings",
    "builtin_scenario",
    "load_scenario",
    "scenario_from_mapping",
    "with_overrides",
]


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message says what to change."""


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Share = Annotated[float, Field(ge=0.0, le=1.0)]


class SubscriberSettings(_Settings):
    """The ordinary population and how it calls."""

    count: int = Field(default=50_000, ge=100, le=5_000_000, description="number of subscribers")
    mobile_share: Share = Field(default=0.85, description="share of subscribers on mobile lines")
    virtual_share: Share = Field(
        default=0.04,
        description="share of the mobile subscribers whose line is from a virtual operator "
        "(170/171/165/167 ranges): people use them too, not only call centres",
    )
    calls_per_day: float = Field(default=3.0, gt=0, le=100, description="mean outgoing calls a day")
    activity_sigma: float = Field(
        default=1.0,
        ge=0,
        le=3,
        description="log-normal sigma of per-person call rates (the heavy tail)",
    )
    contacts_mean: float = Field(default=15.0, ge=1, le=500, description="mean contacts per person")
    answer_rate: Share = Field(default=0.75, description="share of calls between people answered")
    answer_rate_spread: float = Field(
        default=0.2,
        ge=0,
        le=0.5,
        description="people's own answer rates spread evenly over answer_rate +/- this",
    )
    callback_rate: Share = Field(default=0.5, description="share of missed calls returned")
    callback_rate_spread: float = Field(
        default=0.4,
        ge=0,
        le=0.5,
        description="how often a person's missed calls are returned, spread evenly over "
        "callback_rate +/- this from person to person (a trader's customers return fewer)",
    )
    stranger_share: Share = Field(default=0.05, description="share of calls to non-contacts")
    service_share: Share = Field(default=0.03, description="share of calls to 955xx/12345 lines")
    busy_share: Share = Field(
        default=0.01,
        description="share of subscribers who also call for work (sales, shops, agents)",
    )
    busy_calls_per_day: float = Field(
        default=40.0, ge=0, le=1000, description="mean work calls a day of a busy subscriber"
    )
    busy_stranger_share: Share = Field(
        default=0.7, description="share of work calls to people outside their contacts"
    )


class CampaignSettings(_Settings):
    """Nuisance campaigns: how many, and of which categories."""

    count: int = Field(default=150, ge=0, le=10_000, description="number of campaigns")
    mix: dict[Category, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_MIX),
        description="relative weight of each category among campaigns (missing = 0)",
    )
    calls_per_agent_day: float = Field(
        default=800,
        gt=0,
        le=5000,
        description="dials a day of a typical call-centre agent; every campaign's rates scale "
        "with it (shapes are written for 800)",
    )
    shapes: dict[Category, CampaignShape] = Field(
        default_factory=dict,
        description="per-category campaign shapes replacing simulator.shapes.DEFAULT_SHAPES",
    )

    @model_validator(mode="after")
    def _mix_has_weight(self) -> CampaignSettings:
        if self.count > 0 and sum(self.mix.values()) <= 0:
            raise ValueError("mix: at least one category needs a positive weight")
        return self


class LegitSettings(_Settings):
    """How many legitimate high-volume callers of each kind."""

    bank_service: int = Field(default=4, ge=0, le=1000)
    utility_service: int = Field(default=2, ge=0, le=1000)
    courier: int = Field(default=200, ge=0, le=100_000)
    ride_hailing: int = Field(default=300, ge=0, le=100_000)
    school_hospital: int = Field(default=10, ge=0, le=10_000)
    government_hotline: int = Field(default=1, ge=0, le=100)
    enterprise_switchboard: int = Field(default=20, ge=0, le=10_000)
    privacy_number_share: Share = Field(
        default=0.2,
        description="share of courier and ride-hailing lines that call through the platform's "
        "masked number (隐私号) on a virtual-operator range instead of the driver's own",
    )

    def counts(self) -> dict[LegitKind, int]:
        """Callers per kind."""
        return {kind: getattr(self, kind.value) for kind in LegitKind}


class ComplaintSettings(_Settings):
    """Complaints raised by people who received nuisance calls."""

    rate: Share = Field(default=0.03, description="share of answered nuisance calls reported")
    one_ring_rate: Share = Field(default=0.004, description="share of one-ring calls reported")
    mislabel_share: Share = Field(default=0.1, description="true reports with the wrong category")
    noise_share: Share = Field(
        default=0.1, description="share of complaints that are wrong or malicious (legit numbers)"
    )

    @field_validator("noise_share")
    @classmethod
    def _some_signal(cls, value: float) -> float:
        if value >= 1.0:
            raise ValueError("must be below 1: some complaints have to be genuine")
        return value


class OutputSettings(_Settings):
    """How a run is played out to Kafka."""

    rate: float | None = Field(
        default=None, gt=0, description="cap in CDRs a second; null = no cap"
    )
    acceleration: float | None = Field(
        default=None,
        gt=0,
        description="simulated seconds per wall second; null = as fast as possible",
    )
    batch_size: int = Field(default=200, ge=1, le=10_000, description="CDRs per Kafka message")
    raw_format_share: Share = Field(
        default=0.3, description="share of Kafka numbers in raw formats (138-0013-8000, 0086...)"
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$")
_UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Scenario(_Settings):
    """One simulation run."""

    name: str = Field(default="default", min_length=1, max_length=100)
    seed: int = Field(default=20180702, ge=0, lt=2**63)
    start: datetime = Field(
        default=datetime.fromisoformat("2018-07-02T00:00:00+08:00"),
        description="aware datetime on the hour, e.g. 2018-07-02T00:00:00+08:00",
    )
    duration: timedelta = Field(
        default=timedelta(days=1), description="whole hours: 6h, 2d, 1w, P1D"
    )
    subscribers: SubscriberSettings = SubscriberSettings()
    campaigns: CampaignSettings = CampaignSettings()
    legit: LegitSettings = LegitSettings()
    complaints: ComplaintSettings = ComplaintSettings()
    output: OutputSettings = OutputSettings()

    @field_validator("start")
    @classmethod
    def _aware_on_the_hour(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("needs a UTC offset, e.g. 2018-07-02T00:00:00+08:00")
        if value.minute or value.second or value.microsecond:
            raise ValueError("must be on the hour (minutes and seconds 0)")
        return value

    @field_validator("duration", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        if isinstance(value, str) and (match := _DURATION.match(value)):
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
        return value

    @field_validator("duration")
    @classmethod
    def _whole_hours(cls, value: timedelta) -> timedelta:
        seconds = value.total_seconds()
        if seconds <= 0 or seconds % 3600:
            raise ValueError(f"must be a positive whole number of hours, got {value}")
        if seconds > 366 * 86400:
            raise ValueError("must be at most a year")
        return value

    @property
    def hours(self) -> int:
        """Length of the run in hours (one chunk each)."""
        return int(self.duration.total_seconds() // 3600)

    @property
    def start_ms(self) -> int:
        """Start as UTC epoch milliseconds."""
        return round(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        """End (exclusive) as UTC epoch milliseconds."""
        return self.start_ms + self.hours * 3_600_000


def scenario_from_mapping(data: Any, source: str = "scenario") -> Scenario:
    """Validate decoded scenario data, raising :class:`ScenarioError` with every problem."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        raise ScenarioError(_describe(error, source)) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read a ``.yaml``/``.yml`` or ``.toml`` scenario file."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"scenario file not found: {path}")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ScenarioError(f"{path}: unknown scenario format {suffix!r}; use .yaml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as error:
        raise ScenarioError(f"{path}: not valid {suffix[1:].upper()}: {error}") from None
    return scenario_from_mapping({} if data is None else data, str(path))


def builtin_scenario(name: str = "default") -> Scenario:
    """A scenario shipped with the package: ``default``, ``heldout`` or ``tiny``."""
    folder = resources.files("simulator") / "scenarios"
    package_file = folder / f"{name}.yaml"
    if not package_file.is_file():
        names = sorted(f.name.removesuffix(".yaml") for f in folder.iterdir())
        choices = ", ".join(repr(n) for n in names if n != "__init__.py")
        raise ScenarioError(f"no built-in scenario named {name!r}; try {choices}")
    data = yaml.safe_load(package_file.read_text(encoding="utf-8"))
    return scenario_from_mapping(data, f"built-in scenario {name!r}")


def with_overrides(scenario: Scenario, **fields: Any) -> Scenario:
    """A copy with top-level fields replaced and validated again (``None`` = keep).

    A section given as a mapping (``campaigns={"count": 5}``) replaces only the
    fields it names; the section's other fields, campaign shapes among them, stay.
    """
    data = scenario.model_dump()
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    return scenario_from_mapping(data, "scenario with overrides")


def _describe(error: ValidationError, source: str) -> str:
    problems = error.errors()
    lines = [f"{source}: {len(problems)} invalid field{'s' if len(problems) > 1 else ''}"]
    for problem in problems:
        location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = _unknown_field_hint(problem["loc"])
        else:
            message += f" (got {_shorten(problem.get('input'))})"
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)


def _unknown_field_hint(location: tuple[Any, ...]) -> str:
    model: type[BaseModel] = Scenario
    parts = iter(location[:-1])
    for part in parts:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if get_origin(annotation) is dict:
            # A mapping of models (campaigns.shapes): skip its key.
            annotation = get_args(annotation)[1]
            if next(parts, None) is None:
                return "unknown field"
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "unknown field"
        model = annotation
    allowed = list(model.model_fields)
    hint = f"unknown field; allowed: {', '.join(allowed)}"
    close = difflib.get_close_matches(str(location[-1]), allowed, n=1)
    return hint + (f" (did you mean {close[0]!r}?)" if close else "")


def _shorten(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
