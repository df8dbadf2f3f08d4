"""Numbers at the input's edge: invisible format characters are refused on every path."""

from __future__ import annotations

import sys
import unicodedata

import polars as pl
import pytest

from contracts.cdr_vector import normalise_numbers
from contracts.numbers import NumberError, normalise, normalise_many

# Bidirectional controls (marks, embeddings, overrides, isolates), zero-width
# characters, the word joiner, the byte-order mark and the soft hyphen.
FORMAT_CHARACTERS = [
    "\u200e", "\u200f", "\u061c", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069", "\u200b", "\u200c", "\u200d", "\u2060",
    "\ufeff", "\u00ad",
]
NUMBERS = ["13800138000", "+86 138 0013 8000", "010-12345678", "95588", "+44 20 7946 0958"]


def with_character(number: str, character: str, where: str) -> str:
    if where == "first":
        return character + number
    if where == "last":
        return number + character
    middle = len(number) // 2
    return number[:middle] + character + number[middle:]


@pytest.mark.parametrize("character", FORMAT_CHARACTERS)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("region", ["CN", "GB"])
def test_a_format_character_anywhere_is_refused_not_stripped(
    character: str, where: str, region: str
) -> None:
    for number in NUMBERS:
        raw = with_character(number, character, where)
        with pytest.raises(NumberError, match=f"contains U\\+{ord(character):04X}, an invisible"):
            normalise(raw, region)


def test_every_format_character_is_refused() -> None:
    every = [chr(code) for code in range(sys.maxunicode + 1)
             if unicodedata.category(chr(code)) == "Cf"]
    assert len(every) > 150
    raws = [with_character("13800138000", character, "middle") for character in every]
    assert normalise_many(raws) == [None] * len(raws)


def test_the_column_paths_refuse_them_too() -> None:
    raws = [with_character(number, character, "first")
            for number in NUMBERS for character in FORMAT_CHARACTERS]
    clean = ["13800138000", "+44 20 7946 0958"]
    expected = [None] * len(raws) + ["+8613800138000", "+442079460958"]
    assert normalise_many(raws + clean) == expected
    assert normalise_numbers(pl.Series(raws + clean)).to_list() == expected


def test_visible_separators_and_other_digits_are_still_read() -> None:
    assert normalise("\u00a0138\u30000013\u20038000") == "+8613800138000"  # Unicode spaces
    assert normalise("+86１３８００１３８０００") == "+8613800138000"  # full-width digits
