"""Hand free heap back to the system after the worker let go of many callers.

CPython frees small objects into its own arenas and larger ones to glibc's
malloc; both keep freed memory for reuse rather than returning it. After
idle callers leave the block (``BlockFeatureStage.expire_idle``) the freed
columns (numpy, returned at once) are joined by megabytes of freed row
bytes and checkpoint records scattered over the heap, which glibc returns
only on ``malloc_trim``. Measured in ``bench/state_scaling.py`` (100k
callers, one in seven recent, eviction after an hour): 2,250 bytes of RSS
per caller before a trim and 1,230 after.

Only on glibc (Linux); elsewhere :func:`trim_heap` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from functools import cache

__all__ = ["trim_heap"]


@cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    try:
        function = ctypes.CDLL(name or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


def trim_heap() -> float | None:
    """Return free heap to the system; the seconds it took, or None where it cannot."""
    function = _malloc_trim()
    if function is None:
        return None
    started = time.perf_counter()
    function(0)
    return time.perf_counter() - started
