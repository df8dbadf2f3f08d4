"""ColdCallers: batches of evicted keys come due by the latest call among them."""

from __future__ import annotations

import numpy as np

from streams.state.cold_callers import ColdCallers


def test_a_batch_is_due_once_its_latest_call_is_before_the_cutoff() -> None:
    cold = ColdCallers()
    cold.add(0, [b"a", b"b"], np.array([100, 300]))
    cold.add(0, [b"c"], np.array([200]))
    cold.add(1, [b"d"], np.array([50]))
    cold.add(0, [], np.array([], np.int64))  # nothing evicted: nothing remembered
    assert len(cold) == 4
    assert cold.due(0, 300) == [b"c"]  # [a, b]'s latest call is 300: not before 300
    assert cold.due(0, 301) == [b"a", b"b"] and cold.due(0, 10**9) == []
    assert cold.due(2, 10**9) == [] and len(cold) == 1
    assert cold.due(1, 51) == [b"d"] and len(cold) == 0
