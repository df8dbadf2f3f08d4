"""Where the callers' state is kept between messages, and how it reaches its changelog.

- :mod:`streams.state.write_behind`: tables whose rows are written to their
  changelog at checkpoints, not once per message.
- :mod:`streams.state.block_table`: the table behind the block feature
  stage's block, as the stage sees it (the worker's one-copy table, or a
  plain mapping that keeps every row).
- :mod:`streams.state.checkpoint`: the checkpoints of the features agent,
  state to the changelog first, then the acknowledgements.
- :mod:`streams.state.cold_callers`: callers let go of by the block, and
  when their state may have run out.

State may import :mod:`contracts` and :mod:`features`; never
:mod:`streams.pipeline`, :mod:`streams.stages`, :mod:`streams.http`, the
agents or :mod:`streams.app`.
"""
