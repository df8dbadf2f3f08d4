"""The reference engine's feature stage, kept as the oracle the block stage is compared against.

- :mod:`streams.stages.reference.feature_stage`:
  :class:`~streams.stages.reference.feature_stage.FeatureStage`, one
  ``cdr.by_caller`` message applied to per-caller records
  (:mod:`features.reference`), with the contract of
  :class:`streams.stages.block_stage.BlockFeatureStage`.

It lives here rather than in :mod:`features.reference` because it needs the
event clock, the emission and the partitioner of :mod:`streams`, and
:mod:`features` imports nothing of :mod:`streams`. Production code never
imports it (``tests/unit/test_layout.py``).
"""
