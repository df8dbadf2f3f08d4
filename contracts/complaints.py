"""The complaint contract: a user's report of a nuisance number.

Topic ``complaints``; one JSON object per complaint, or a JSON array of
them, keyed (optionally) by the reported number. Fields: ``complaint_id``
(string, the dedup key), ``reporter`` and ``reported`` (numbers in any
common format, normalised like CDR numbers), ``category`` (the reporter's
label, free text, optional) and ``time_ms`` (epoch ms) or ``time`` (RFC 3339
with offset). Reports are noisy (wrong or malicious): they feed the
"complaints received" feature, never a decision on their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts.cdr import (
    DEFAULT_MAX_MESSAGE_BYTES,
    FieldError,
    ValidationResult,
    epoch_ms_field,
    number_field,
    required_field,
    validate_records,
)

__all__ = ["Complaint", "complaint_from_mapping", "validate_complaints"]

_MAX_TEXT = 128


@dataclass(frozen=True, slots=True)
class Complaint:
    """One valid complaint, numbers normalised, time in epoch ms (UTC)."""

    complaint_id: str
    reporter: str
    reported: str
    category: str | None
    time_ms: int


def complaint_from_mapping(fields: Mapping[str, Any], default_region: str = "CN") -> Complaint:
    """Build a :class:`Complaint` or raise :class:`FieldError` with the reason."""
    return Complaint(
        complaint_id=_text(fields, "complaint_id", required=True) or "",
        reporter=number_field(fields, "reporter", default_region),
        reported=number_field(fields, "reported", default_region),
        category=_text(fields, "category", required=False),
        time_ms=epoch_ms_field(fields, "time" if "time" in fields else "time_ms"),
    )


def validate_complaints(
    raw: bytes | None, *, default_region: str = "CN", max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> ValidationResult[Complaint]:
    """Validate one ``complaints`` message (an object or an array of objects)."""
    return validate_records(
        raw, lambda fields: complaint_from_mapping(fields, default_region), max_bytes=max_bytes
    )


def _text(fields: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = required_field(fields, name) if required else fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise FieldError(f"{name}: must be a string of 1 to {_MAX_TEXT} characters")
    return value
