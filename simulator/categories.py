"""Who makes a simulated call: nuisance categories, legitimate bulk callers, row sources."""

from __future__ import annotations

from enum import StrEnum

import polars as pl

__all__ = [
    "DEFAULT_MIX",
    "SECTORS",
    "SOURCES",
    "SOURCE_DTYPE",
    "Category",
    "LegitKind",
    "source_id",
]


class Category(StrEnum):
    """Nuisance categories, as labelled in the ground truth and in complaints."""

    FINANCE_MARKETING = "finance_marketing"
    DEBT_COLLECTION = "debt_collection"
    REAL_ESTATE = "real_estate"
    OTHER_MARKETING = "other_marketing"
    ONE_RING = "one_ring"
    FRAUD = "fraud"


class LegitKind(StrEnum):
    """High-volume callers that are legitimate and must never be flagged."""

    BANK_SERVICE = "bank_service"
    UTILITY_SERVICE = "utility_service"
    COURIER = "courier"
    RIDE_HAILING = "ride_hailing"
    SCHOOL_HOSPITAL = "school_hospital"
    GOVERNMENT_HOTLINE = "government_hotline"
    ENTERPRISE_SWITCHBOARD = "enterprise_switchboard"


# Campaigns per category. The first three follow the 12321 reporting centre's
# shares of harassment reports in July 2018: loans and wealth management 30.9%,
# illegal debt collection 21.0%, real estate 14.0%. The other 34.1% is split by
# us; one-ring and fraud get a tenth each (more than their share of reports
# would suggest) so that a day holds enough of their campaigns to learn from.
DEFAULT_MIX: dict[Category, float] = {
    Category.FINANCE_MARKETING: 0.309,
    Category.DEBT_COLLECTION: 0.210,
    Category.REAL_ESTATE: 0.140,
    Category.OTHER_MARKETING: 0.141,
    Category.ONE_RING: 0.100,
    Category.FRAUD: 0.100,
}

SECTORS: dict[Category, tuple[str, ...]] = {
    Category.FINANCE_MARKETING: ("loans", "wealth_management", "securities"),
    Category.DEBT_COLLECTION: ("illegal_collection",),
    Category.REAL_ESTATE: ("real_estate_agency",),
    Category.OTHER_MARKETING: ("insurance", "education", "recruitment", "travel"),
    Category.ONE_RING: ("premium_callback",),
    Category.FRAUD: (
        "police_impersonation",
        "bank_impersonation",
        "courier_impersonation",
        "customer_service_impersonation",
    ),
}

# What produced a CDR row: the index of a source is its id in generation arrays.
SOURCES: tuple[str, ...] = (
    "background",
    "callback",
    *(category.value for category in Category),
    *(kind.value for kind in LegitKind),
)
SOURCE_DTYPE = pl.Enum(list(SOURCES))
_SOURCE_IDS = {name: index for index, name in enumerate(SOURCES)}


def source_id(name: str) -> int:
    """The integer id of a row source (``'background'``, a category or a legit kind)."""
    return _SOURCE_IDS[str(name)]
