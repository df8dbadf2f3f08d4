"""The worker: Faust agents over Kafka, from ``cdr.raw`` to decisions on ``cdr.flags``.

At the top stand the pieces that wire the worker together:
:mod:`streams.app` (the app factory), :mod:`streams.agents` (the Faust
agents), :mod:`streams.settings`, :mod:`streams.topics`, the commands
(:mod:`streams.cli`, :mod:`streams.review_cli`, :mod:`streams.demo`) and the
local broker (:mod:`streams.broker`). The rest, in the order data meets it:

- :mod:`streams.pipeline`: ``cdr.raw`` and ``complaints`` read, aligned in
  event time, validated and routed to ``cdr.by_caller``;
- :mod:`streams.stages`: the pure stages the agents call, features to
  decisions;
- :mod:`streams.state`: the callers' state between messages, and its
  changelog;
- :mod:`streams.http`: the worker's HTTP server (views, metrics, dashboard,
  access);
- :mod:`streams.tuning`: tuning of the worker process;
- :mod:`streams.workarounds`: workarounds for the broker and the Kafka
  libraries, installed only by the app factory and the CLI.
"""
