"""Numbers as viewers see them: ``+8613800138000`` becomes ``+86 138****8000``.

Viewers (not operators) get every E.164 number in the JSON they receive
masked, by the server: :func:`masked` walks a JSON-ready value and masks
each string that is a whole E.164 number or segment. Short service numbers
(95588, 10086) carry no ``+`` and are not personal; they stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

__all__ = ["mask_number", "masked"]

_E164 = re.compile(r"\+\d{5,15}")


def mask_number(number: str) -> str:
    """The country code, then at most the first 3 and last 4 national digits.

    At least 4 digits are hidden, and never fewer than all but 7.

    >>> mask_number("+8613800138000")
    '+86 138****8000'
    >>> mask_number("+861012345678")
    '+86 101****678'
    >>> mask_number("+861380013")  # a segment: its 7 digits would finish a masked number
    '+86 138****'
    >>> mask_number("95588")
    '95588'
    """
    if not _E164.fullmatch(number):
        return number
    digits = number[1:]
    code = next((digits[:size] for size in (1, 2, 3)
                 if int(digits[:size]) in COUNTRY_CODE_TO_REGION_CODE), digits[:1])
    national = digits[len(code):]
    hidden = max(4, len(national) - 7)
    head = min(3, len(national) - hidden)
    tail = national[head + hidden:]
    return f"+{code} {national[:head]}{'*' * hidden}{tail}"


def masked(value: Any) -> Any:
    """``value`` (JSON-ready: dicts, lists, scalars) with every E.164 string masked."""
    if isinstance(value, str):
        return mask_number(value)
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [masked(item) for item in value]
    return value
