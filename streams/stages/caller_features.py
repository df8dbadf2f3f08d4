"""What the feature stages emit for scoring, and its ``caller.features`` message.

:class:`Emission` is the output of both feature engines
(:mod:`streams.stages.block_stage`, the worker's, and the reference
:mod:`streams.stages.reference.feature_stage`) and the input of
:mod:`streams.stages.decision_stage`; ``caller.features`` publishes it with the
column names of :data:`features.vector.FEATURE_NAMES`: the engines' window
features, then the calling number's kind, added here from the numbers. It lives apart from
the stages so that neither engine, nor the message format, depends on the
other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson
from numpy.typing import NDArray

from contracts.by_caller import DEFAULT_MAX_MESSAGE_BYTES
from features.caller_number import caller_number_features
from features.vector import FEATURE_NAMES

__all__ = ["Emission", "decode_features", "encode_features", "encode_features_parts"]


@dataclass(slots=True)
class Emission:
    """Feature vectors of the emitted callers, one row each.

    ``rows`` hold the window features the engines compute
    (:data:`~features.vector.WINDOW_FEATURE_NAMES`); :meth:`matrix` adds the
    features of each number's kind.
    """

    numbers: list[str] = field(default_factory=list)
    window_end_ms: list[int] = field(default_factory=list)
    rows: list[NDArray[np.float64]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.numbers)

    def extend(self, other: Emission) -> None:
        """Append ``other``'s rows after these."""
        self.numbers += other.numbers
        self.window_end_ms += other.window_end_ms
        self.rows += other.rows

    def matrix(self) -> NDArray[np.float64]:
        """The rows stacked with each number's kind, columns in ``FEATURE_NAMES`` order."""
        if not self.rows:
            return np.zeros((0, len(FEATURE_NAMES)))
        return np.hstack((np.vstack(self.rows), caller_number_features(self.numbers)))


def encode_features(emission: Emission) -> bytes:
    """One ``caller.features`` message: emitted callers and their feature rows.

    ``{"feature_names": [...], "numbers": [...], "window_end_ms": [...], "rows": [[...]]}``
    """
    return orjson.dumps(
        {
            "feature_names": list(FEATURE_NAMES),
            "numbers": emission.numbers,
            "window_end_ms": emission.window_end_ms,
            "rows": emission.matrix(),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def encode_features_parts(
    emission: Emission, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> list[bytes]:
    """:func:`encode_features`, cut into several messages when one would exceed ``max_bytes``."""
    encoded = encode_features(emission)
    if len(encoded) <= max_bytes or len(emission) <= 1:
        return [encoded]
    cut = len(emission) // 2
    parts = []
    for start, stop in ((0, cut), (cut, len(emission))):
        half = type(emission)(
            emission.numbers[start:stop],
            emission.window_end_ms[start:stop],
            emission.rows[start:stop],
        )
        parts.extend(encode_features_parts(half, max_bytes))
    return parts


def decode_features(raw: bytes) -> dict[str, list]:  # type: ignore[type-arg]
    """Inverse of :func:`encode_features`, as plain lists."""
    return orjson.loads(raw)  # type: ignore[no-any-return]
