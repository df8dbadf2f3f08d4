"""The review queue: ``watch`` decisions an operator confirms or dismisses.

Shared by the dashboard's routes (:mod:`streams.http.dashboard.review`) and
``callguard review`` (:mod:`streams.review_cli`), so both check, send and
audit alike:

- the queue is the numbers whose latest decision is a ``watch`` still in
  force, newest first (:func:`review_queue`);
- ``confirm`` turns a watch into ``block`` (source ``operator``); ``dismiss``
  clears a flag as a false positive (source ``operator``) and holds the
  number as an upheld appeal does (``CALLGUARD_APPEAL_HOLD_S``);
- the action travels as an appeal does, on ``cdr.by_caller`` to the
  partition that owns the number, with its ``kind``
  (:class:`contracts.by_caller.AppealColumns`); the owning worker applies it on
  its event-time clock and publishes the decision with the operator as
  actor, which the store keeps in the flag history and as a labelled
  example (``operator_labels``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from contracts.by_caller import AppealColumns, RoutedBatch, encode_routed
from contracts.numbers import NumberError, normalise
from sinks.clickhouse import Store, current_flag
from streams.http.dashboard import queries
from streams.http.dashboard.actions import ActionRefused, OperatorRequest
from streams.pipeline.ingest import partition_for_number

if TYPE_CHECKING:
    from streams.app import CallguardApp

__all__ = ["REVIEW_KINDS", "ReviewAction", "refusal", "review_queue", "send_review"]

REVIEW_KINDS = ("confirm", "dismiss")
# Which latest action each kind applies to: confirm works the queue, dismiss any flag.
_APPLIES_TO = {"confirm": ("watch",), "dismiss": ("watch", "block")}


@dataclass(frozen=True, slots=True)
class ReviewAction:
    """A checked confirm or dismiss: the kind, and the number (normalised), who and why."""

    kind: str
    request: OperatorRequest

    @classmethod
    def checked(
        cls, kind: str, number: str, *, actor: str, reason: str, region: str
    ) -> ReviewAction:
        """Check every part; :class:`ActionRefused` says what is wrong."""
        if kind not in REVIEW_KINDS:
            raise ActionRefused(f"{kind!r} is not a review action ({', '.join(REVIEW_KINDS)})")
        if not actor.strip():
            raise ActionRefused("the action needs an actor")
        if not reason.strip():
            raise ActionRefused("required: reason")
        try:
            normalised = normalise(number, region)
        except NumberError as error:
            raise ActionRefused(f"{number!r}: {error}") from None
        return cls(kind, OperatorRequest(normalised, actor.strip(), reason.strip()))

    @property
    def number(self) -> str:
        """The normalised number acted on."""
        return self.request.subject

    def message(self, sent_ms: int) -> bytes:
        """The ``cdr.by_caller`` message that carries the action to the owning worker."""
        ask = self.request
        columns = AppealColumns([ask.subject], [ask.actor], [ask.reason], [sent_ms], [self.kind])
        return encode_routed(RoutedBatch(appeals=columns))

    def partition(self, partitions: int) -> int:
        """The ``cdr.by_caller`` partition of the number (its owning worker's)."""
        return partition_for_number(self.number, partitions)


def review_queue(
    store: Store, now: datetime, *, category: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The watches in force at ``now``, newest first, as JSON-ready rows."""
    return queries.flags_now(store, now, actions=("watch",), category=category, limit=limit)


def refusal(store: Store, action: ReviewAction, now: datetime) -> str | None:
    """Why the store says the action has nothing to act on, or ``None`` when it has.

    The store follows the worker by a second or so: a number flagged just
    now may not be there yet.
    """
    latest = current_flag(store, action.number)
    wanted = _APPLIES_TO[action.kind]
    if latest is None:
        return f"{action.number} has no decision to {action.kind}"
    expires_at = latest["expires_at"]
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if str(latest["action"]) not in wanted or expires_at <= now:
        where = "in the review queue" if action.kind == "confirm" else "flagged"
        return f"{action.number} is not {where} (latest decision: {latest['action']})"
    return None


async def send_review(app: CallguardApp, action: ReviewAction) -> dict[str, Any]:
    """Send the action to the worker that owns the number (as an appeal is sent)."""
    partition = action.partition(app.settings.partitions)
    message = action.message(int(time.time() * 1000))
    delivered = await app.topics.by_caller.send(value=message, partition=partition)
    await delivered
    outcome = "block" if action.kind == "confirm" else "clear"
    return {
        "number": action.number,
        "action": action.kind,
        "actor": action.request.actor,
        "sent": True,
        "detail": f"the owning worker publishes a {outcome}; it shows here within seconds",
    }
