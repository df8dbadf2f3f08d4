"""The latency trace header: reading, carrying, choosing the oldest timestamp."""

from streams.pipeline.trace import SOURCE_MS_HEADER, headers_for, oldest_ms, source_ms


def test_oldest_of_faust_timestamps_in_ms_ignoring_missing_ones():
    assert oldest_ms([1_700_000_000_500, None, 1_699_999_999_250, 0]) == 1_699_999_999_250
    assert oldest_ms([None]) is None
    assert oldest_ms([]) is None


def test_source_ms_reads_mappings_and_kafka_header_lists():
    assert source_ms({SOURCE_MS_HEADER: b"1234"}) == 1234
    assert source_ms([("other", b"x"), (SOURCE_MS_HEADER, b"99")]) == 99
    assert source_ms([("other", b"x")]) is None
    assert source_ms(None) is None
    assert source_ms({SOURCE_MS_HEADER: b"not a number"}) is None


def test_headers_round_trip():
    assert source_ms(headers_for(1_700_000_000_123)) == 1_700_000_000_123
    assert headers_for(None) is None
