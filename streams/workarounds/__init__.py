"""Workarounds for the embedded broker and for the Kafka client libraries.

Each module names the library or broker version it works around and what
would let it go, so that a move to Apache Kafka or a library upgrade can drop
it:

- :mod:`~streams.workarounds.hw_nudge`: Tansu's short high watermarks
  (embedded broker only; off on Apache Kafka).
- :mod:`~streams.workarounds.fetch_wait`: Faust's fixed fetch wait, which
  Tansu turns into latency.
- :mod:`~streams.workarounds.fetch_guard`: aiokafka draining paused
  partitions during Faust's table recovery.
- :mod:`~streams.workarounds.faust_resume`: Faust's resume order after a
  rebalance dropping fetched events.

They import Faust, aiokafka and kafka-python only, nothing of callguard's.
Only the app factory (:mod:`streams.app`) and the CLI entry points
(:mod:`streams.cli`) install them; ``tests/unit/test_layout.py`` checks that.
"""
