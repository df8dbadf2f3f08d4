"""Operators' actions from the dashboard: uphold an appeal, allow a number.

Both require why; who acts is the signed-in user (``op:<name>``), never a
field of the request. Both are audited where the CLI's are (the appeal in
the flag history with the operator as actor, the allow-list in its
append-only audit table).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contracts.by_caller import AppealColumns, RoutedBatch, encode_routed
from contracts.numbers import NumberError, normalise
from models.allowlist import AllowList
from streams.pipeline.ingest import partition_for_number

if TYPE_CHECKING:
    from streams.app import CallguardApp

__all__ = ["ActionRefused", "OperatorRequest", "allow_number", "send_appeal"]


class ActionRefused(ValueError):
    """The request cannot be carried out as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class OperatorRequest:
    """A checked operator action: the subject (number or pattern), who and why."""

    subject: str
    actor: str
    reason: str

    @classmethod
    def from_json(cls, body: Any, subject_field: str, actor: str) -> OperatorRequest:
        """Read and check ``{subject_field, reason}``, done by ``actor``; refuse blanks.

        A body that names an ``actor`` is refused: who acts is the credential's user.
        """
        if not isinstance(body, dict):
            raise ActionRefused("send a JSON object")
        if "actor" in body:
            raise ActionRefused("do not send actor: the action is recorded as the signed-in "
                                "user")
        values = {name: body.get(name) for name in (subject_field, "reason")}
        missing = [name for name, value in values.items()
                   if not isinstance(value, str) or not value.strip()]
        if missing:
            raise ActionRefused(f"required: {', '.join(missing)}")
        return cls(values[subject_field].strip(), actor, values["reason"].strip())


async def send_appeal(app: CallguardApp, request: OperatorRequest) -> dict[str, Any]:
    """Send an upheld appeal to the worker that owns the number (as ``callguard appeal``)."""
    try:
        number = normalise(request.subject, app.settings.default_region)
    except NumberError as error:
        raise ActionRefused(f"{request.subject!r}: {error}") from None
    if app.models.current is None:
        # The owning worker lifts flags with the serving model's policy.
        raise ActionRefused("no model is serving yet, so a flag cannot be lifted; try later")
    batch = RoutedBatch(
        appeals=AppealColumns(
            [number], [request.actor], [request.reason], [int(time.time() * 1000)]
        )
    )
    partition = partition_for_number(number, app.settings.partitions)
    delivered = await app.topics.by_caller.send(value=encode_routed(batch), partition=partition)
    await delivered
    return {
        "number": number,
        "actor": request.actor,
        "sent": True,
        "detail": "the owning worker publishes a clear; it shows here within seconds",
    }


async def allow_number(app: CallguardApp, request: OperatorRequest) -> dict[str, Any]:
    """Put a number or range on the allow-list (never flagged while there)."""

    def add() -> dict[str, Any]:
        with AllowList.open(app.settings.allowlist_path) as allowlist:
            entry = allowlist.add(request.subject, actor=request.actor, why=request.reason)
        return {"pattern": entry.pattern, "kind": entry.kind, "actor": entry.added_by}

    try:
        added = await asyncio.get_running_loop().run_in_executor(None, add)
    except ValueError as error:  # AllowListError, PatternError: the message says why
        raise ActionRefused(str(error)) from None
    return {
        **added,
        "allowed": True,
        "detail": "workers pick it up within seconds; a flagged number is cleared "
        "when it is next scored",
    }
