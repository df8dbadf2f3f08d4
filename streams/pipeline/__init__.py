"""The way in: ``cdr.raw`` and ``complaints`` read, validated and routed to ``cdr.by_caller``.

- :mod:`streams.pipeline.intake`: the ingest loop, outside Faust's
  per-message machinery (its own consumer group, a fetch at a time).
- :mod:`streams.pipeline.alignment`: input partitions released in event
  time across them.
- :mod:`streams.pipeline.ingest`: validation, normalisation and routing by
  caller number into ``cdr.by_caller`` batches.
- :mod:`streams.pipeline.partitions`: Kafka's default partitioner over many
  keys at once.
- :mod:`streams.pipeline.deadletter`: the record a rejected message leaves
  on ``cdr.deadletter``.
- :mod:`streams.pipeline.trace`: the latency header carried from
  ``cdr.raw`` to ``cdr.flags``.

The pipeline may import :mod:`contracts` and its own modules; never
:mod:`streams.stages`, :mod:`streams.state`, :mod:`streams.http`, the agents
or :mod:`streams.app` (the app only for annotations, under ``TYPE_CHECKING``).
"""
