"""Where decisions are written: the flag store and the buffer in front of it.

- :mod:`sinks.clickhouse`: the flag store in ClickHouse (a server, or the
  embedded chdb engine), its schema, writes and reads.
- :mod:`sinks.buffered`: a bounded buffer that never drops a decision while
  the store is down, with :mod:`sinks.backoff` for its retries.
- :mod:`sinks.cli`: ``callguard db ...``.

Sinks may import :mod:`contracts`; nothing of :mod:`streams`,
:mod:`features`, :mod:`models` or :mod:`simulator`.
"""
