r"""Allow-list patterns and the matcher the scoring path asks.

Pattern syntax (spaces, dashes, dots and brackets are ignored):

* **A number** in any format :func:`contracts.numbers.normalise` accepts:
  ``138-0013-8000``, ``010 12345678``, ``95588``. Matches that number only.
* **A prefix** ending in ``*``: the number starts with these digits, any
  length after. ``+86400812*``, ``0755-8601*``, ``1380013*``, ``955*``.
* **A fixed-length range** ending in ``x``\ s: one more digit per ``x``.
  ``955xx`` is every five-digit 955 line (95588, not 955881).

The digits of a prefix are read as callguard numbers are normalised:

==========================  ==========================  ===================
written                     means                       stored as
==========================  ==========================  ===================
``+86...`` / ``0086...``    national digits             ``+86...``
``0...``                    fixed line with area code   ``+86`` + no ``0``
``13``–``19...``            mobile segment              ``+861...``
``400...`` / ``800...``     call-centre numbers         ``+86400...``
``9...``, ``10``–``12...``  short service numbers       bare digits
``+<country>...``           foreign numbers             ``+<country>...``
==========================  ==========================  ===================

Anything else (``21*``: a fixed line without its ``0``) is refused as
ambiguous, as are prefixes too short to be deliberate (``1*``, ``+8613*``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from contracts.numbers import NumberError, normalise

__all__ = ["AllowMatcher", "AllowPattern", "PatternError", "parse_pattern"]

PatternKind = Literal["exact", "prefix"]

_SEPARATORS = re.compile(r"[\s\-().]")
_WILDCARD = re.compile(r"(?P<digits>\+?\d*)(?P<tail>\*|[xX]+)")
_SERVICE_MAX_DIGITS = 6
_MIN_SERVICE_PREFIX = 2
_MIN_E164_NATIONAL_PREFIX = 3


class PatternError(ValueError):
    """A string that is neither a number nor a prefix pattern; the message says why."""


@dataclass(frozen=True)
class AllowPattern:
    """A parsed pattern: ``text`` is its canonical spelling, the store's key."""

    text: str
    kind: PatternKind
    digits: str
    length: int | None = None  # total length of matching numbers; None: any


def parse_pattern(raw: str) -> AllowPattern:
    """Parse and normalise an allow-list pattern, or raise :class:`PatternError`.

    >>> parse_pattern("138-0013-8000").text
    '+8613800138000'
    >>> [parse_pattern(p).text for p in ("955*", "955xx", "0755-8601*", "1380013*")]
    ['955*', '955xx', '+867558601*', '+861380013*']
    """
    compact = _SEPARATORS.sub("", raw or "")
    wildcard = _WILDCARD.fullmatch(compact)
    if wildcard is None:
        try:
            number = normalise(compact)
        except NumberError as error:
            raise PatternError(f"{raw!r} is neither a number nor a prefix: {error}") from None
        return AllowPattern(number, "exact", number, len(number))
    digits = _prefix_digits(raw, wildcard["digits"])
    tail = wildcard["tail"]
    if tail == "*":
        return AllowPattern(digits + "*", "prefix", digits)
    length = len(digits) + len(tail)
    if not digits.startswith("+") and length > _SERVICE_MAX_DIGITS:
        raise PatternError(f"{raw!r}: short service numbers have at most 6 digits")
    return AllowPattern(digits + "x" * len(tail), "prefix", digits, length)


def _prefix_digits(raw: str, written: str) -> str:
    """Normalise the digits of a prefix pattern (see the module docstring)."""
    if len(written.lstrip("+")) < _MIN_SERVICE_PREFIX:
        raise PatternError(f"{raw!r} is too broad: give at least 2 digits")
    if written.startswith(("+86", "0086")):
        national = written.removeprefix("+86").removeprefix("0086")
        if national.startswith("0"):
            raise PatternError(f"{raw!r}: after +86 the area code has no leading 0")
        return _e164(raw, "+86", national)
    if written.startswith("+"):
        return _e164(raw, "+", written[1:])
    if written.startswith("00"):
        return _e164(raw, "+", written[2:])
    if written.startswith("0"):
        return _e164(raw, "+86", written[1:])
    if re.match(r"1[3-9]|400|800", written):
        return _e164(raw, "+86", written)
    if re.match(r"9|1[0-2]", written):
        if len(written) > _SERVICE_MAX_DIGITS:
            raise PatternError(f"{raw!r}: short service numbers have at most 6 digits")
        return written
    raise PatternError(
        f"{raw!r} is ambiguous: write fixed-line prefixes with the area code's 0 (021*) "
        "or +86 (+8621*), mobile segments from their 1 (1380013*), 400 numbers as 400*"
    )


def _e164(raw: str, country: str, rest: str) -> str:
    if len(rest) < _MIN_E164_NATIONAL_PREFIX:
        raise PatternError(f"{raw!r} is too broad: give at least 3 digits after {country}")
    return country + rest


class AllowMatcher:
    """Immutable, fast membership test for normalised numbers (the scoring hot path).

    >>> matcher = AllowMatcher([parse_pattern(p) for p in ("955xx", "12345", "+86400812*")])
    >>> matcher.allows_many(["95588", "955881", "12345", "+864008123123", "+8613800138000"])
    [True, False, True, True, False]
    """

    def __init__(self, patterns: Iterable[AllowPattern], *, revision: int = 0) -> None:
        self.revision = revision
        self._exact: dict[str, str] = {}
        self._prefixes: dict[tuple[str, int | None], str] = {}
        for pattern in patterns:
            if pattern.kind == "exact":
                self._exact[pattern.digits] = pattern.text
            else:
                self._prefixes[(pattern.digits, pattern.length)] = pattern.text
        self._prefix_lengths = sorted({len(digits) for digits, _ in self._prefixes})

    def __len__(self) -> int:
        return len(self._exact) + len(self._prefixes)

    def match(self, number: str) -> str | None:
        """The canonical pattern that allows ``number``, or ``None``.

        ``number`` should be normalised (as callers are on ``cdr.by_caller``);
        other spellings are normalised here, and garbage is never allowed.
        """
        normal = _as_normal(number)
        if normal is None:
            return None
        text = self._exact.get(normal)
        if text is not None:
            return text
        size = len(normal)
        for length in self._prefix_lengths:
            if length > size:
                break
            head = normal[:length]
            text = self._prefixes.get((head, None)) or self._prefixes.get((head, size))
            if text is not None:
                return text
        return None

    def allows(self, number: str) -> bool:
        """Whether ``number`` is allow-listed: it must never be flagged."""
        return self.match(number) is not None

    def allows_many(self, numbers: Sequence[str]) -> list[bool]:
        """:meth:`allows` for a batch, in order."""
        match = self.match
        return [match(number) is not None for number in numbers]


def _as_normal(number: str) -> str | None:
    if number.startswith("+") or (number.isdigit() and len(number) <= _SERVICE_MAX_DIGITS):
        return number
    try:
        return normalise(number)
    except NumberError:
        return None
