"""Events fetched while Faust resumes the streams after a rebalance reach the agents."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest
from faust.topics import Topic

from streams.app import create_app
from streams.settings import load_settings


async def _declared(topic: faust.TopicT) -> None:
    """No broker here: the written topics count as declared."""


def test_an_event_fetched_during_the_seek_survives_the_queues_being_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Topic, "maybe_declare", _declared)
    settings = load_settings(partitions=1, store_enabled=False, changelog_nudge_s=0,
                             model_dir=tmp_path / "models")
    app = create_app(settings)
    app.intake = None  # no broker here: ingest does not start
    faust_app = app.faust_app
    faust_app.finalize()

    async def deliver(queue: asyncio.Queue, event: str) -> None:
        """What Faust's conductor does with each fetched message."""
        await faust_app.flow_control.acquire()
        queue.put_nowait(event)

    async def rebalance() -> list[str]:
        # Faust's order (Recovery.on_recovery_completed): table recovery left
        # flow control open; the signal; the stream partitions resume and the
        # fetcher hands over what it prefetched while the seek is awaited;
        # then the resume, which empties every agent's queue.
        faust_app.flow_control.resume()
        agent_queue = faust_app.FlowControlQueue(maxsize=10, clear_on_resume=True)
        await faust_app.on_rebalance_complete.send()
        fetched = asyncio.ensure_future(deliver(agent_queue, "cdr batch"))
        await asyncio.sleep(0.01)
        faust_app.flow_control.resume()
        await fetched
        return [agent_queue.get_nowait() for _ in range(agent_queue.qsize())]

    assert asyncio.run(rebalance()) == ["cdr batch"]
