"""The worker's HTTP server: views, metrics, the dashboard, and who may use them.

- :mod:`streams.http.web`: the worker's views (status, lookups of callers
  and numbers, forwarded to the owning worker).
- :mod:`streams.http.metrics`: ``GET /metrics`` in the Prometheus format, and
  samples written to the store.
- :mod:`streams.http.dashboard`: the operations dashboard and the review
  page, with their static files.
- :mod:`streams.http.access`: users, tokens, roles and the rule of every
  route.

HTTP sits on top of the data path: it may import :mod:`contracts`,
:mod:`models`, :mod:`sinks`, :mod:`streams.pipeline`, :mod:`streams.stages`
and :mod:`streams.state`; :mod:`streams.app` only for annotations, under
``TYPE_CHECKING``; never the agents.
"""
