"""Number normalisation: a table of the formats carriers send."""

from __future__ import annotations

import pytest

from contracts.numbers import NumberError, NumberKind, normalise, number_kind, segment_of

NORMALISATIONS = [
    # mobile in every common dress
    ("+8613800138000", "+8613800138000"),
    ("13800138000", "+8613800138000"),
    ("008613800138000", "+8613800138000"),
    ("8613800138000", "+8613800138000"),
    ("138-0013-8000", "+8613800138000"),
    ("138 0013 8000", "+8613800138000"),
    ("+86 138 0013 8000", "+8613800138000"),
    ("19912345678", "+8619912345678"),
    # fixed lines: two- and three-digit area codes
    ("010-12345678", "+861012345678"),
    ("01012345678", "+861012345678"),
    ("(021) 6123 4567", "+862161234567"),
    ("0755-86013388", "+8675586013388"),
    ("+86 10 1234 5678", "+861012345678"),
    ("0086-20-83838383", "+862083838383"),
    # 400/800 call-centre numbers
    ("4008123123", "+864008123123"),
    ("400-812-3123", "+864008123123"),
    ("8008101818", "+868008101818"),
    # short service numbers stay bare digits
    ("95588", "95588"),
    ("95533", "95533"),
    ("96511", "96511"),
    ("12345", "12345"),
    ("12321", "12321"),
    ("10086", "10086"),
    ("110", "110"),
    # digits of other scripts are the ASCII digits they stand for
    ("１３８００１３８０００", "+8613800138000"),
    ("١٣٨٠٠١٣٨٠٠٠", "+8613800138000"),
    ("+86 138٠٠١٣٨٠٠٠", "+8613800138000"),
    ("٩٥٥٨٨", "95588"),
    # foreign numbers (spoofed or real) in E.164
    ("+1 650 253 0000", "+16502530000"),
    ("0044 20 7946 0958", "+442079460958"),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALISATIONS)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "abc", "+86", "1380013800012345678", "--"])
def test_normalise_rejects_non_numbers(raw: str) -> None:
    with pytest.raises(NumberError):
        normalise(raw)


def test_normalise_rejects_non_strings() -> None:
    with pytest.raises(NumberError, match="expected a string"):
        normalise(13800138000)  # type: ignore[arg-type]


def test_default_region_applies_to_national_numbers() -> None:
    assert normalise("020 7946 0958", default_region="GB") == "+442079460958"


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("+8613800138000", NumberKind.MOBILE),
        ("+861012345678", NumberKind.FIXED),
        ("+864008123123", NumberKind.NON_GEOGRAPHIC),
        ("95588", NumberKind.SERVICE),
        ("+16502530000", NumberKind.INTERNATIONAL),
    ],
)
def test_number_kind(number: str, kind: NumberKind) -> None:
    assert number_kind(number) is kind


def test_segments() -> None:
    assert segment_of("+8613800138000") == "1380013"
    assert segment_of("+8613800139999") == "1380013"
    assert segment_of("+861012345678") == "101234"
    assert segment_of("95588") == "95588"
