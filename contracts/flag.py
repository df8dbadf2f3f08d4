"""The decision record published on ``cdr.flags`` and stored in ClickHouse.

Keyed by the E.164 number (bare digits for short service numbers), so the
topic can be compacted: the latest value per number is the truth. The JSON
Schema is ``contracts/schemas/flag.schema.json``; docs in ``docs/flags.md``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

__all__ = [
    "Action",
    "Flag",
    "decision_id_for",
    "decode_flag",
    "encode_flag",
    "ms_to_rfc3339",
]


class Action(StrEnum):
    """What interception systems should do with calls from the number."""

    BLOCK = "block"
    WATCH = "watch"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class Flag:
    """One decision about one number. Times are epoch milliseconds (UTC)."""

    number: str
    action: Action
    category: str
    score: float
    reasons: tuple[str, ...]
    model_version: str
    window_end_ms: int
    flagged_at_ms: int
    expires_at_ms: int | None
    source: str = "model"  # model, expiry, appeal, allowlist, operator (confirm or dismiss)
    features: dict[str, float] = field(default_factory=dict, compare=False)
    actor: str = ""  # the operator behind an appeal/confirm/dismiss; empty for the pipeline's

    @property
    def decision_id(self) -> str:
        """Deterministic id (see :func:`decision_id_for`)."""
        return decision_id_for(
            self.number, self.action, self.category, self.flagged_at_ms, self.source
        )

    def active_at(self, now_ms: int) -> bool:
        """Whether the flag still applies at ``now_ms``."""
        if self.action is Action.CLEAR:
            return False
        return self.expires_at_ms is None or now_ms < self.expires_at_ms


def decision_id_for(
    number: str, action: Action | str, category: str, flagged_at_ms: int, source: str
) -> str:
    """The one definition of a decision's id: 32 hex digits of a SHA-256.

    The id names the decision *event*: which number, what was done, for which
    category, when (in event time, milliseconds) and why (``source``). It is
    replay-safe because every part is derived from the CDRs' clock and the
    decision itself, never from the wall clock, the worker, the attempt or the
    model build: a batch retried after a timeout, or the stream replayed from
    an earlier offset (even after a model promotion), gives a decision the id
    it had the first time, so the store keeps one row for it.

    ``model_version`` and ``window_end`` are left out on purpose. A replay
    under a newer model that reaches the same verdict at the same moment is
    the same decision, not a second one; and a ``clear`` inherits the
    ``window_end`` and ``model_version`` of the flag it lifts, so with those
    in the id an appeal and an expiry of one flag would collide and one audit
    record would be lost. ``flagged_at`` and ``source`` tell them apart.
    ``flagged_at`` in milliseconds is also the ``flags_current`` version, so
    two decisions with one id never compete there.

    >>> decision_id_for("+8613800138000", "block", "fraud", 1714528800000, "model")
    '2fb50aefdcc97207cdb723eba4867f62'
    """
    identity = f"{number}|{Action(action).value}|{category}|{int(flagged_at_ms)}|{source}"
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def ms_to_rfc3339(epoch_ms: int | None) -> str | None:
    """Epoch milliseconds as RFC 3339 UTC text (``...Z``), or ``None``."""
    if epoch_ms is None:
        return None
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rfc3339_to_ms(text: str | None) -> int | None:
    if text is None:
        return None
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def encode_flag(flag: Flag) -> bytes:
    """The JSON value on ``cdr.flags``."""
    value: dict[str, Any] = {
        "number": flag.number,
        "action": flag.action.value,
        "category": flag.category,
        "score": round(flag.score, 6),
        "reasons": list(flag.reasons),
        "model_version": flag.model_version,
        "window_end": ms_to_rfc3339(flag.window_end_ms),
        "flagged_at": ms_to_rfc3339(flag.flagged_at_ms),
        "expires_at": ms_to_rfc3339(flag.expires_at_ms),
        "source": flag.source,
        "decision_id": flag.decision_id,
    }
    if flag.actor:
        value["actor"] = flag.actor
    if flag.features:
        value["features"] = flag.features
    return orjson.dumps(value)


def decode_flag(raw: bytes) -> Flag:
    """Inverse of :func:`encode_flag`."""
    value = orjson.loads(raw)
    return Flag(
        number=value["number"],
        action=Action(value["action"]),
        category=value["category"],
        score=float(value["score"]),
        reasons=tuple(value["reasons"]),
        model_version=value["model_version"],
        window_end_ms=_rfc3339_to_ms(value["window_end"]) or 0,
        flagged_at_ms=_rfc3339_to_ms(value["flagged_at"]) or 0,
        expires_at_ms=_rfc3339_to_ms(value["expires_at"]),
        source=value.get("source", "model"),
        features=value.get("features", {}),
        actor=value.get("actor", ""),
    )
