"""The feature core: per-caller behaviour over hopping windows, streaming and offline alike.

- :mod:`features.config`: windows, thresholds and sketch sizes, one frozen
  value shared by both paths.
- :mod:`features.batch`: columnar CDR batches, every per-call quantity
  derived once.
- :mod:`features.aggregate`, :mod:`features.sketch` and :mod:`features.runs`:
  the mergeable aggregates behind every feature, the sketches that keep them
  small, and the grouping primitive.
- :mod:`features.vector`: the features, one pure function each of a window's
  aggregate, and their order (:data:`~features.vector.FEATURE_NAMES`).
- :mod:`features.block`: the block engine the worker runs, many callers as
  columns, with :mod:`features.fingerprints` (how a resent call is
  recognised).
- :mod:`features.reference`: the reference ("records") engine, one
  :class:`~features.reference.state.CallerState` per caller, the oracle the
  block engine is compared against to the bit; production code never
  imports it.
- :mod:`features.offline`: the same arithmetic with polars over whole tables,
  for training and notebooks.

Features may import :mod:`contracts` and each other; nothing of
:mod:`streams`, :mod:`models`, :mod:`sinks` or :mod:`simulator`, so the
worker and training compute the same thing from the same code.
"""
