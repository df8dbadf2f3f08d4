"""Tuning of the worker process: garbage collection and the heap.

- :mod:`streams.tuning.gc_tuning`: the collector's thresholds, set once at
  start.
- :mod:`streams.tuning.heap_trim`: free heap handed back to the system after
  many callers were let go of.

These modules import nothing of callguard's: only the standard library.
"""
