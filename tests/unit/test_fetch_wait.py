"""Faust's worker consumer takes callguard's fetch wait instead of its fixed 1.5 s."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.workarounds import fetch_wait


def test_the_worker_consumer_is_built_with_the_configured_fetch_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Faust's own method for a start, put back afterwards (the app factory installs it too).
    monkeypatch.setattr(AIOKafkaConsumerThread, "_create_worker_consumer", fetch_wait._ORIGINAL)
    monkeypatch.setattr(fetch_wait, "_wait_ms", fetch_wait._wait_ms)

    async def waits() -> list[int]:  # aiokafka builds consumers inside a running loop
        app = faust.App("fetch-wait-test", broker="kafka://127.0.0.1:1")
        thread = app.consumer._thread
        found = [thread._create_worker_consumer(app.transport)._fetch_max_wait_ms]  # Faust's
        for wait_ms in (80, 120):  # installing again changes the value, not the wrapping
            fetch_wait.install(wait_ms)
            found.append(thread._create_worker_consumer(app.transport)._fetch_max_wait_ms)
        return found

    assert asyncio.run(waits()) == [1500, 80, 120]
