"""Phone-number normalisation: any common Chinese format to E.164.

The common shapes (mobile with or without ``+86``/``0086``, area-coded fixed
lines with or without a dash, short service numbers) are recognised by a
regular expression in about a microsecond; everything else goes through
``phonenumbers`` (about 30 microseconds), behind a bounded cache.

Invisible format characters (Unicode category Cf: bidirectional controls
such as U+202E, zero-width characters, the byte-order mark) are refused,
never stripped: a number that displays differently from what it holds is
not one to trust or to flag under.

Digits of other scripts (fullwidth ``１３８``, Arabic-Indic ``١٣٨``) are read as
the ASCII digits they stand for: a normalised number holds ASCII only.

Convention: a normalised number that starts with ``+`` is E.164. Short
service numbers (``95588``, ``12345``, ``10086``...) have no E.164 form and
are kept as their bare digits, so they stay recognisable: no ``+``, 3 to 6
digits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from enum import StrEnum
from functools import lru_cache

import phonenumbers

__all__ = [
    "VIRTUAL_OPERATOR_PREFIXES",
    "NumberError",
    "NumberKind",
    "normalise",
    "normalise_many",
    "number_kind",
    "segment_of",
]

# Mobile network prefixes of the virtual (MVNO) operators' ranges.
VIRTUAL_OPERATOR_PREFIXES = ("170", "171", "165", "167")


class NumberError(ValueError):
    """A string that is not a usable phone number."""


class NumberKind(StrEnum):
    """What a normalised number is, as far as callguard cares."""

    MOBILE = "mobile"
    FIXED = "fixed"
    SERVICE = "service"  # 95xxx/96xxx, 1xxxx hotlines, carrier short codes
    NON_GEOGRAPHIC = "non_geographic"  # 400/800 call-centre numbers
    INTERNATIONAL = "international"


_SEPARATORS = re.compile(r"[\s\-().]")
_MOBILE = re.compile(r"(?:\+86|0086|86)?(1[3-9]\d{9})", re.ASCII)
# Two-digit area codes: 10 (Beijing) and 20-29; all others have three digits.
_FIXED = re.compile(r"(?:\+86|0086|0)((?:10|2\d)\d{8}|[3-9]\d{2}\d{7,8})", re.ASCII)
_SERVICE = re.compile(r"(?:9[56]\d{3,4}|1\d{4}|100\d{2,3}|1[0-2]\d)", re.ASCII)
_NON_GEOGRAPHIC = re.compile(r"(?:\+86|0086)?([48]00\d{7})", re.ASCII)
_SERVICE_MAX_DIGITS = 6
# Already normal for region CN: +86 and a mobile, fixed-line or 400/800
# number in ASCII digits. normalise() gives such text back unchanged (nothing
# to strip, and the first of its fast patterns that matches keeps every digit).
_NORMAL_CN = re.compile(r"\+86(?:1[3-9][0-9]{9}|(?:10|2[0-9])[0-9]{8}|[3-9][0-9]{9,10})")


def normalise(raw: str, default_region: str = "CN") -> str:
    """Return ``raw`` in callguard's normal form, or raise :class:`NumberError`.

    >>> normalise("138-0013-8000")
    '+8613800138000'
    >>> normalise("010-12345678")
    '+861012345678'
    >>> normalise("95588")
    '95588'
    """
    if not isinstance(raw, str):
        raise NumberError(f"expected a string, got {type(raw).__name__}")
    compact = _SEPARATORS.sub("", raw)
    if not compact:
        raise NumberError("empty number")
    if default_region == "CN":
        fast = _normalise_cn_fast(compact)
        if fast is not None:
            return fast
    if not compact.isascii():  # the fast patterns take no format character: only here
        _refuse_format_characters(compact)
    return _normalise_slow(compact, default_region)


def normalise_many(raws: Sequence[str], default_region: str = "CN") -> list[str | None]:
    """Each text normalised as :func:`normalise` does it, or ``None`` where it raises.

    For a column of numbers, most of them already normal: those cost one
    regular-expression match, and each other distinct text one call.

    >>> normalise_many(["+8613800138000", "010-12345678", "abc"])
    ['+8613800138000', '+861012345678', None]
    """
    if default_region == "CN":
        matches = map(_NORMAL_CN.fullmatch, raws)
        normal = [raw if match else None for raw, match in zip(raws, matches, strict=True)]
    else:
        normal = [None] * len(raws)
    pending = [row for row, value in enumerate(normal) if value is None]
    answers = {raw: _normalise_or_none(raw, default_region) for raw in {raws[r] for r in pending}}
    for row in pending:
        normal[row] = answers[raws[row]]
    return normal


def _normalise_or_none(raw: str, default_region: str) -> str | None:
    try:
        return normalise(raw, default_region)
    except NumberError:
        return None


def _refuse_format_characters(text: str) -> None:
    for character in text:
        if unicodedata.category(character) == "Cf":
            raise NumberError(
                f"contains U+{ord(character):04X}, an invisible format character "
                "(bidirectional control, zero-width character or byte-order mark)"
            )


def _normalise_cn_fast(compact: str) -> str | None:
    match = _MOBILE.fullmatch(compact)
    if match:
        return "+86" + match.group(1)
    match = _FIXED.fullmatch(compact)
    if match:
        return "+86" + match.group(1)
    match = _NON_GEOGRAPHIC.fullmatch(compact)
    if match:
        return "+86" + match.group(1)
    if _SERVICE.fullmatch(compact):
        return compact
    return None


@lru_cache(maxsize=262_144)
def _normalise_slow(compact: str, default_region: str) -> str:
    if not compact.isascii():
        # Other scripts' decimal digits (fullwidth, Arabic-Indic, ...) as ASCII: the same
        # number written either way is one caller.
        compact = "".join(
            str(unicodedata.decimal(character)) if character.isdecimal() else character
            for character in compact
        )
    if compact.isdigit() and len(compact) <= _SERVICE_MAX_DIGITS and not compact.startswith("0"):
        # A short code in the default region: no E.164 form exists.
        return compact
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    try:
        parsed = phonenumbers.parse(compact, default_region)
    except phonenumbers.NumberParseException as error:
        raise NumberError(f"not a phone number: {error}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise NumberError("not a possible phone number (wrong length for its country)")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def number_kind(number: str) -> NumberKind:
    """Classify a *normalised* number.

    >>> number_kind("+8613800138000").value
    'mobile'
    >>> number_kind("95588").value
    'service'
    """
    if not number.startswith("+"):
        return NumberKind.SERVICE
    if not number.startswith("+86"):
        return NumberKind.INTERNATIONAL
    national = number[3:]
    if national[0] == "1" and len(national) == 11:
        return NumberKind.MOBILE
    if national[:3] in ("400", "800"):
        return NumberKind.NON_GEOGRAPHIC
    return NumberKind.FIXED


def segment_of(number: str) -> str:
    """The number segment (号段) a normalised number belongs to.

    Mobile numbers: the first 7 national digits (network prefix and regional
    block). Fixed lines: area code plus the exchange, i.e. all but the last 4
    digits. Service numbers are their own segment.

    >>> segment_of("+8613800138000")
    '1380013'
    >>> segment_of("+861012345678")
    '101234'
    """
    if not number.startswith("+"):
        return number
    national = number[3:] if number.startswith("+86") else number[1:]
    if len(national) == 11 and national[0] == "1":
        return national[:7]
    return national[:-4]
