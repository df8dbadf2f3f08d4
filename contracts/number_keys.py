"""Normalised numbers as 64-bit integer keys, and back.

A normalised number (:func:`contracts.numbers.normalise`) is E.164, ``+``
then 1 to 15 digits of which the first is not 0, or a short service number,
1 to 6 digits without ``+`` or a leading 0 (``95588``, ``12345``). Its key:

- E.164: the value of its digits (below 10**15, so under 2**50);
- a service number: :data:`SERVICE_TAG` plus the value of its digits.

Neither form has a leading 0, so the key gives the text back exactly, and
two numbers share a key only if they are the same text. Keys are what the
compiled parts of the pipeline work on: a column of them is one numpy array
instead of a list of Python strings; text is made again only where a person
or another system reads the number.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = [
    "SERVICE_TAG",
    "are_keys",
    "as_keys",
    "feature_keys",
    "number_key",
    "number_keys",
    "number_text",
    "number_texts",
]

SERVICE_TAG = 1 << 60
_E164_DIGITS = 15
_SERVICE_DIGITS = 6
_PLUS, _ZERO, _NINE = ord("+"), ord("0"), ord("9")
_INVALID = -1


def number_key(number: str) -> int:
    """The key of one normalised number; ``ValueError`` if ``number`` is not normalised.

    >>> number_key("+8613800138000")
    8613800138000
    >>> number_key("95588") == SERVICE_TAG + 95588
    True
    """
    # One number at a time (ingest's record path): plain Python, no array made.
    e164 = number[:1] == "+"
    digits = number[1:] if e164 else number
    if (
        not digits.isascii()
        or not digits.isdigit()
        or digits[0] == "0"
        or len(digits) > (_E164_DIGITS if e164 else _SERVICE_DIGITS)
    ):
        raise ValueError(f"not a normalised number: {number!r}")
    return int(digits) if e164 else SERVICE_TAG + int(digits)


def as_keys(numbers: Sequence[str] | Sequence[int] | NDArray[np.integer]) -> NDArray[np.int64]:
    """Numbers given as keys or as normalised texts, as an array of keys.

    Columns of ``cdr.by_caller`` hold keys; messages written before they did,
    and callers that have texts at hand, give texts.
    """
    if isinstance(numbers, np.ndarray) and numbers.dtype.kind in "iu":
        return numbers.astype(np.int64, copy=False)
    if len(numbers) and isinstance(numbers[0], str):
        return number_keys(numbers)  # type: ignore[arg-type]
    return np.asarray(numbers, dtype=np.int64)


def are_keys(keys: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which values are keys of a normalised number (what :func:`number_texts` accepts)."""
    keys = np.asarray(keys, dtype=np.int64)
    e164 = (keys > 0) & (keys < 10**_E164_DIGITS)
    return e164 | ((keys > SERVICE_TAG) & (keys < SERVICE_TAG + 10**_SERVICE_DIGITS))


def feature_keys(keys: NDArray[np.int64]) -> NDArray[np.uint64]:
    """The features' integer form of each number: its digits, without the service tag.

    Equal to :func:`features.batch.callee_keys` of the texts (the value of the
    digits, ``+`` dropped), which the sketches and segment counts hash.
    """
    keys = np.asarray(keys, dtype=np.int64)
    return np.where(keys >= SERVICE_TAG, keys - SERVICE_TAG, keys).astype(np.uint64)


def number_keys(numbers: Sequence[str]) -> NDArray[np.int64]:
    """The key of each normalised number (one compiled pass over their bytes).

    ``ValueError`` naming the first text that is not a normalised number.
    """
    if len(numbers) == 0:
        return np.zeros(0, np.int64)
    joined = "".join(numbers)
    if not joined.isascii():
        bad = next(number for number in numbers if not number.isascii())
        raise ValueError(f"not a normalised number: {bad!r}")
    lengths = np.fromiter(map(len, numbers), np.int64, len(numbers))
    starts = np.cumsum(lengths) - lengths
    keys = _keys(np.frombuffer(joined.encode(), np.uint8), starts, lengths)
    invalid = np.flatnonzero(keys == _INVALID)
    if len(invalid):
        raise ValueError(f"not a normalised number: {numbers[int(invalid[0])]!r}")
    return keys


def number_text(key: int) -> str:
    """The normalised number of a key (the inverse of :func:`number_key`).

    >>> number_text(8613800138000)
    '+8613800138000'
    >>> number_text(SERVICE_TAG + 95588)
    '95588'
    """
    return number_texts([int(key)])[0]


def number_texts(keys: NDArray[np.int64] | Sequence[int]) -> list[str]:
    """The normalised number of each key."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    if len(keys) == 0:
        return []
    # One compiled pass writes every text, a newline after each; one decode and
    # one split make the strings (about half the time of one f-string each).
    written, invalid = _texts(keys)
    if invalid >= 0:
        raise ValueError(f"not a number key: {int(keys[invalid])}")
    return written.tobytes().decode("ascii").split("\n")[:-1]


@njit(cache=True, nogil=True)  # type: ignore[misc]  # numba ships no type information
def _texts(keys: NDArray[np.int64]) -> tuple[NDArray[np.uint8], int]:
    """The keys' texts as ASCII, each followed by a newline; the first invalid key's index.

    The index is -1 when every key is valid (the texts are then complete).
    """
    out = np.empty(len(keys) * (_E164_DIGITS + 2), np.uint8)
    digits = np.empty(_E164_DIGITS, np.uint8)
    at = 0
    for row in range(len(keys)):
        key = keys[row]
        service = key >= SERVICE_TAG
        value = key - SERVICE_TAG if service else key
        if value <= 0 or value >= (10**_SERVICE_DIGITS if service else 10**_E164_DIGITS):
            return out[:at], row
        count = 0
        while True:
            digits[count] = _ZERO + value % 10
            value //= 10
            count += 1
            if value == 0:
                break
        if not service:
            out[at] = _PLUS
            at += 1
        for index in range(count - 1, -1, -1):
            out[at] = digits[index]
            at += 1
        out[at] = 10
        at += 1
    return out[:at], -1


@njit(cache=True, nogil=True)  # type: ignore[misc]  # numba ships no type information
def _keys(data: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64]) -> (
    NDArray[np.int64]
):
    """Each number's key, or -1 where the bytes are not a normalised number."""
    keys = np.empty(len(starts), np.int64)
    for row in range(len(starts)):
        start, length = starts[row], lengths[row]
        e164 = length > 0 and data[start] == _PLUS
        first = start + 1 if e164 else start
        digits = start + length - first
        limit = _E164_DIGITS if e164 else _SERVICE_DIGITS
        value = 0
        valid = 0 < digits <= limit and data[first] != _ZERO
        for position in range(first, start + length):
            byte = data[position]
            if byte < _ZERO or byte > _NINE:
                valid = False
                break
            value = value * 10 + (byte - _ZERO)
        if not valid:
            keys[row] = _INVALID
        else:
            keys[row] = value if e164 else SERVICE_TAG + value
    return keys
