"""The block engine: the streaming state of many callers as columns, a message at a time.

- :mod:`features.block.engine`: :class:`~features.block.engine.CallerBlock`,
  the state itself, equal to a :class:`features.reference.state.CallerState`
  per caller.
- :mod:`features.block.layout`: its columns, one table of callers and one of
  slots.
- :mod:`features.block.pool`: the growable record tables they live in.
- :mod:`features.block.ops`: the grouped array operations of an update.
- :mod:`features.block.read`: feature vectors of many rows at once.
- :mod:`features.block.rows`: one caller's row as bytes for the changelog,
  and back.
- :mod:`features.block.load`: many callers' rows loaded back at once.

The block may import the rest of :mod:`features` and :mod:`contracts`;
nothing of :mod:`streams` (the stage that drives it,
:mod:`streams.stages.block_stage`, imports it, not the other way round).
"""
