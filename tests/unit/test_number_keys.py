"""Integer number keys: every format the validator accepts goes to a key and back to its text;
keys are routed to the partitions of their text, as Kafka's clients route the text."""

from __future__ import annotations

import numpy as np
import pytest
from aiokafka.partitioner import murmur2
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from contracts.number_keys import (
    SERVICE_TAG,
    are_keys,
    as_keys,
    feature_keys,
    number_key,
    number_keys,
    number_text,
    number_texts,
)
from contracts.numbers import normalise
from features.batch import callee_keys
from streams.pipeline.ingest import partition_for_number
from streams.pipeline.partitions import partitions_of, partitions_of_keys
from tests.unit.test_numbers import NORMALISATIONS


def random_numbers(count: int, seed: int) -> list[str]:
    """Normalised numbers of every length each form allows, drawn at random."""
    rng = np.random.default_rng(seed)
    numbers = []
    for _ in range(count):
        service = rng.random() < 0.3
        digits = int(rng.integers(1, 7 if service else 16))
        text = str(rng.integers(1, 10)) + "".join(map(str, rng.integers(0, 10, digits - 1)))
        numbers.append(text if service else "+" + text)
    return numbers


def test_every_format_the_validator_accepts_round_trips() -> None:
    normalised = [normalise(raw) for raw, _ in NORMALISATIONS]
    assert normalised == [expected for _, expected in NORMALISATIONS]
    keys = number_keys(normalised)
    assert keys.dtype == np.int64
    assert number_texts(keys) == normalised
    for number, key in zip(normalised, keys.tolist(), strict=True):
        assert number_key(number) == key and number_text(key) == number


def test_random_numbers_round_trip_and_distinct_texts_have_distinct_keys() -> None:
    numbers = random_numbers(20_000, seed=3)
    keys = number_keys(numbers)
    assert number_texts(keys) == numbers
    assert are_keys(keys).all()
    assert [number_key(number) for number in numbers] == keys.tolist()
    assert len(set(keys.tolist())) == len(set(numbers))
    service = np.array([not number.startswith("+") for number in numbers])
    assert ((keys >= SERVICE_TAG) == service).all()
    assert (keys[~service] < 10**15).all()


def test_feature_keys_are_the_digits_the_features_read_from_texts() -> None:
    numbers = random_numbers(5_000, seed=5)
    keys = number_keys(numbers)
    np.testing.assert_array_equal(feature_keys(keys), callee_keys(numbers))
    np.testing.assert_array_equal(as_keys(numbers), keys)  # texts, or
    np.testing.assert_array_equal(as_keys(keys.tolist()), keys)  # keys as Python ints
    assert as_keys([]).dtype == np.int64 and len(as_keys([])) == 0


@pytest.mark.parametrize(
    "text", ["", "+", "13800138000", "+0123", "0955", "+86 138", "+8613800138000x",
             "1234567", "+1234567890123456", "９５５８８"],
)
def test_a_text_that_is_not_normalised_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="not a normalised number") as error:
        number_keys(["+8613800138000", text])
    assert repr(text) in str(error.value)
    with pytest.raises(ValueError, match="not a normalised number"):
        number_key(text)  # one number at a time, as ingest's record path keys them


@pytest.mark.parametrize("key", [0, -1, 10**15, SERVICE_TAG, SERVICE_TAG + 10**6])
def test_a_value_that_is_no_key_is_refused(key: int) -> None:
    assert not are_keys(np.array([key]))[0]
    with pytest.raises(ValueError, match="not a number key"):
        number_text(key)
    with pytest.raises(ValueError, match=f"not a number key: {key}"):
        number_texts([8613800138000, key])


def test_keys_go_to_the_partitions_kafka_clients_give_their_text() -> None:
    numbers = [expected for _, expected in NORMALISATIONS] + random_numbers(2_000, seed=5)
    keys = number_keys(numbers)
    for partitions in (1, 2, 3, 4, 8, 12, 16):
        routed = partitions_of_keys(keys, partitions)
        assert routed.tolist() == partitions_of(numbers, partitions).tolist()
        # kafka-python's DefaultPartitioner: murmur2 of the key bytes, positive, modulo.
        assert routed.tolist() == [
            (kafka_python_murmur2(number.encode()) & 0x7FFFFFFF) % partitions
            for number in numbers
        ]
        assert routed.tolist() == [
            (murmur2(number.encode()) & 0x7FFFFFFF) % partitions for number in numbers
        ]
        assert routed.tolist() == [partition_for_number(n, partitions) for n in numbers]


def test_routing_refuses_no_partitions() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        partitions_of_keys(number_keys(["95588"]), 0)
