"""The reference engine, one object per caller: the oracle of the block engine.

The reference engine, one object per caller, is kept as the oracle the
block engine (:mod:`features.block`) is compared against bit for bit;
production code never imports it.

- :mod:`features.reference.state`: :class:`~features.reference.state.CallerState`,
  one caller's rings, reorder buffer, inbound filter and held complaints.
- :mod:`features.reference.caller_record`:
  :class:`~features.reference.caller_record.CallerRecord`, what its table
  stores per caller (the state with its dedup memory and bookkeeping).

Its feature stage (the "records" stage) is
:mod:`streams.stages.reference.feature_stage`: it needs the event clock and
the emission of :mod:`streams.stages`, and :mod:`features` imports nothing
of :mod:`streams`. Tests and benchmarks (``bench/``) use the reference
engine; ``tests/unit/test_layout.py`` checks that nothing else does.
"""
