"""Kafka's default partitioner over many keys at once (numpy).

:func:`murmur2_many` is bit for bit the murmur2 of Kafka's Java client
(``Utils.murmur2``) and of :func:`aiokafka.partitioner.murmur2`, computed
for a whole column of keys: the keys lie end to end in one buffer, keys of
one byte length are hashed together, and each of their 4-byte blocks is
read by one gather from an unaligned view of the buffer. A few tens of ns
per key instead of 2.5 us for the pure-Python hash, so a message's numbers
are routed without a cache. :func:`partitions_of_keys` routes integer number
keys (:mod:`contracts.number_keys`) to the partitions of their text, in one
compiled pass that writes each key's text out and hashes it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from numba import njit
from numpy.typing import NDArray

from contracts.number_keys import SERVICE_TAG

__all__ = ["murmur2_many", "partitions_of", "partitions_of_keys", "warm_up_routing"]

_SEED = 0x9747B28C
_M = np.uint32(0x5BD1E995)


def partitions_of(keys: Sequence[str], partitions: int) -> np.ndarray:
    """The partition (int64) of each key's UTF-8 bytes under Kafka's default partitioner."""
    hashes = _murmur2_ascii(keys)
    if hashes is None:
        hashes = murmur2_many([key.encode() for key in keys])
    return (hashes & np.uint32(0x7FFFFFFF)).astype(np.int64) % partitions


def murmur2_many(keys: Sequence[bytes]) -> np.ndarray:
    """Kafka's murmur2 (unsigned 32 bits, as aiokafka returns it) of each key."""
    lengths = np.fromiter(map(len, keys), np.int64, len(keys))
    starts = np.cumsum(lengths) - lengths
    return _murmur2_at(np.frombuffer(b"".join(keys), np.uint8), starts, lengths)


def _murmur2_ascii(keys: Sequence[str]) -> np.ndarray | None:
    """murmur2 of keys that are all ASCII without NUL; ``None`` if some key is not.

    Such text is its UTF-8 bytes, one per character: the keys are joined
    with NUL after each, so their bounds come from one scan of the bytes
    instead of a ``len`` per key.
    """
    if not keys:
        return None
    joined = "\0".join(keys)
    if not joined.isascii() or joined.count("\0") != len(keys) - 1:
        return None
    data = np.frombuffer((joined + "\0").encode(), np.uint8)
    ends = np.flatnonzero(data == 0)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    return _murmur2_at(data, starts, ends - starts)


def _murmur2_at(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """murmur2 of each key of ``data`` (bytes), the one at each start with its length."""
    hashes = np.empty(len(lengths), np.uint32)
    # words[i]: the little-endian 4 bytes from byte i on, whatever its alignment
    words = np.ndarray((max(len(data) - 3, 0),), "<u4", data, strides=(1,))
    distinct = np.unique(lengths).tolist()
    for length in distinct:
        if len(distinct) == 1:
            hashes[:] = _murmur2_rows(data, words, starts, length)
        else:
            rows = np.flatnonzero(lengths == length)
            hashes[rows] = _murmur2_rows(data, words, starts[rows], length)
    return hashes


def _murmur2_rows(
    data: np.ndarray, words: np.ndarray, starts: np.ndarray, length: int
) -> np.ndarray:
    """murmur2 of the keys of ``length`` bytes at ``starts`` in ``data``."""
    hashes = np.full(len(starts), _SEED ^ length, np.uint32)
    blocks = length // 4
    for block in range(blocks):
        word = words[starts + 4 * block] * _M
        word ^= word >> 24
        word *= _M
        hashes *= _M
        hashes ^= word
    tail, at = length % 4, starts + blocks * 4
    if tail >= 3:
        hashes ^= data[at + 2].astype(np.uint32) << 16
    if tail >= 2:
        hashes ^= data[at + 1].astype(np.uint32) << 8
    if tail >= 1:
        hashes ^= data[at].astype(np.uint32)
        hashes *= _M
    hashes ^= hashes >> 13
    hashes *= _M
    hashes ^= hashes >> 15
    return hashes


def warm_up_routing() -> float:
    """Compile (or load from numba's cache) the routing of number keys; seconds it took."""
    started = time.perf_counter()
    partitions_of_keys(np.array([8613800138000, SERVICE_TAG + 95588], np.int64), 4)
    return time.perf_counter() - started


def partitions_of_keys(keys: NDArray[np.int64], partitions: int) -> NDArray[np.int64]:
    """``partitions_of(number_texts(keys), partitions)`` without making the texts."""
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    return _key_partitions(np.ascontiguousarray(keys, dtype=np.int64), partitions)


_MASK32 = np.uint64(0xFFFFFFFF)
_M64 = np.uint64(_M)


@njit(cache=True, nogil=True)  # type: ignore[misc]  # numba ships no type information
def _key_partitions(keys: NDArray[np.int64], partitions: int) -> NDArray[np.int64]:
    """Kafka's murmur2 of each key's text (``+`` and digits, or a service number's digits)."""
    found = np.empty(len(keys), np.int64)
    text = np.empty(17, np.uint8)
    m = _M64
    for row in range(len(keys)):
        key = keys[row]
        service = key >= SERVICE_TAG
        value = key - SERVICE_TAG if service else key
        # The digits, last first, at the end of the buffer; then "+" for E.164.
        at = 17
        while True:
            at -= 1
            text[at] = np.uint8(48 + value % 10)
            value //= 10
            if value == 0:
                break
        if not service:
            at -= 1
            text[at] = np.uint8(43)
        length = 17 - at
        h = (np.uint64(_SEED) ^ np.uint64(length)) & _MASK32
        for block in range(length // 4):
            first = at + 4 * block
            k = (
                np.uint64(text[first])
                | (np.uint64(text[first + 1]) << np.uint64(8))
                | (np.uint64(text[first + 2]) << np.uint64(16))
                | (np.uint64(text[first + 3]) << np.uint64(24))
            )
            k = (k * m) & _MASK32
            k ^= k >> np.uint64(24)
            k = (k * m) & _MASK32
            h = (h * m) & _MASK32
            h ^= k
        tail, last = length % 4, at + length // 4 * 4
        if tail >= 3:
            h ^= np.uint64(text[last + 2]) << np.uint64(16)
        if tail >= 2:
            h ^= np.uint64(text[last + 1]) << np.uint64(8)
        if tail >= 1:
            h ^= np.uint64(text[last])
            h = (h * m) & _MASK32
        h ^= h >> np.uint64(13)
        h = (h * m) & _MASK32
        h ^= h >> np.uint64(15)
        found[row] = np.int64(h & np.uint64(0x7FFFFFFF)) % partitions
    return found
