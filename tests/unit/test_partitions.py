"""The numpy murmur2 is Kafka's default partitioner, bit for bit."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import murmur2

from streams.pipeline.ingest import partition_for_number
from streams.pipeline.partitions import murmur2_many, partitions_of


def test_murmur2_many_is_aiokafka_murmur2_on_every_length() -> None:
    rng = random.Random(3)
    keys = [rng.randbytes(rng.randrange(0, 41)) for _ in range(20_000)]
    assert murmur2_many(keys).tolist() == [murmur2(key) for key in keys]


def test_no_key() -> None:
    assert murmur2_many([]).tolist() == []
    assert partitions_of([], 4).tolist() == []


@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 8, 12, 100])
def test_partitions_of_numbers_are_those_of_partition_for_number(partitions: int) -> None:
    rng = random.Random(partitions)
    numbers = [rng.choice(["+86", "+1", "+44", ""]) + str(rng.randrange(10 ** rng.randrange(1, 14)))
               for _ in range(5000)]
    numbers += ["95588", "110", "+8613800138000", "١٢٣٤٥", "+86１３８", "é" * 7]  # not all ASCII
    assert partitions_of(numbers, partitions).tolist() == [
        partition_for_number(number, partitions) for number in numbers]


@pytest.mark.parametrize(
    "keys",
    [["+8613800138000"] * 3, ["", "a", "", "abcd"], ["a\0b", "+86138"], ["é", "\0"], ["\0\0", ""],
     ["x" * 40, "y" * 41, "1234"]],
)
def test_partitions_of_any_text(keys: list[str]) -> None:
    """Keys of one length, empty keys, and keys holding NUL (joined otherwise)."""
    assert partitions_of(keys, 7).tolist() == [partition_for_number(key, 7) for key in keys]
