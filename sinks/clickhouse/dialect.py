"""What a ClickHouse version can do, as far as the schema cares.

Thresholds are conservative: a server just past one renders like an older one,
which is always valid SQL, only less compact or without TTL.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerFeatures"]

_TTL_SINCE = (20, 1)  # column/table TTL appeared in 19.6; 20.1 is the first LTS after
_LOW_CARDINALITY_SINCE = (20, 1)  # experimental (setting needed) until 19.x
_SQL_USERS_SINCE = (20, 5)  # CREATE USER / GRANT; 18.x keeps users in users.xml
_MUTATIONS_SYNC_SINCE = (20, 1)  # mutations_sync setting on ALTER ... DELETE
_ADD_COLUMN_IF_NOT_EXISTS_SINCE = (20, 1)  # 18.16 has only a bare ADD COLUMN


@dataclass(frozen=True, slots=True)
class ServerFeatures:
    """The schema-relevant abilities of one engine version.

    >>> ServerFeatures((18, 16, 1)).ttl
    False
    >>> ServerFeatures((26, 9, 2, 1)).string_type
    'LowCardinality(String)'
    """

    version: tuple[int, ...]

    @property
    def ttl(self) -> bool:
        """Whether tables can expire rows by ``TTL``."""
        return self.version >= _TTL_SINCE

    @property
    def low_cardinality(self) -> bool:
        """Whether ``LowCardinality(String)`` works without experimental settings."""
        return self.version >= _LOW_CARDINALITY_SINCE

    @property
    def sql_users(self) -> bool:
        """Whether users and grants can be managed with SQL."""
        return self.version >= _SQL_USERS_SINCE

    @property
    def mutations_sync(self) -> bool:
        """Whether ``ALTER ... DELETE`` can wait for itself (``SETTINGS mutations_sync``)."""
        return self.version >= _MUTATIONS_SYNC_SINCE

    @property
    def add_column_if_not_exists(self) -> bool:
        """Whether ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` parses."""
        return self.version >= _ADD_COLUMN_IF_NOT_EXISTS_SINCE

    @property
    def string_type(self) -> str:
        """The type for short, repetitive strings (categories, versions, actors)."""
        return "LowCardinality(String)" if self.low_cardinality else "String"
