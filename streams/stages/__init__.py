"""The pure stages between the agents and the state: features, emission, decisions, expiry.

- :mod:`streams.stages.block_stage`: one ``cdr.by_caller`` message applied
  to the callers' state (the columnar block), counted in
  :mod:`streams.stages.stage_stats`; which callers it emits is
  :class:`features.emission.EmissionPolicy`, training's rule too.
- :mod:`streams.stages.reference`: the same contract over the reference
  engine's per-caller records, the oracle the block stage is tested
  against; nothing outside the reference code imports it.
- :mod:`streams.stages.event_clock`: when a caller's short bucket is
  complete, the event-time clock of ``cdr.by_caller`` partitions that drives
  emission.
- :mod:`streams.stages.caller_features`: what the feature stages emit for
  scoring, and its ``caller.features`` message.
- :mod:`streams.stages.model_service`: the model, policy and allow-list the
  decisions are made with.
- :mod:`streams.stages.decision_stage`: from emitted feature vectors to flag
  decisions.
- :mod:`streams.stages.expiry`: which flags lapse when, as stream time
  advances.

The stages are pure of Faust: they read and write mappings the agents hand
them. They may import :mod:`contracts`, :mod:`features`, :mod:`models`,
:mod:`streams.state` and :mod:`streams.pipeline` (the partitioner and the
routing of a number); never :mod:`streams.http`, the agents or
:mod:`streams.app`.
"""
