"""Hold fetched events back while Faust resumes streams after a rebalance.

Works around faust-streaming 0.15.3 (``Recovery.on_recovery_completed``),
whatever the broker: the race is in Faust's resume order, so Apache Kafka
needs this as much as the embedded Tansu broker. It can be dropped once a
Faust release resumes flow control before it resumes the stream partitions
(check ``on_recovery_completed`` when upgrading faust-streaming, then run the
takeover test, ``tests/integration/test_features_broker.py``, without it).
"""

from __future__ import annotations

import faust

__all__ = ["hold_events_until_streams_resume"]


def hold_events_until_streams_resume(faust_app: faust.App) -> None:
    """After a rebalance, hold fetched events back until Faust has emptied the agents' queues.

    Faust (faust-streaming 0.15.3, ``Recovery.on_recovery_completed``) sends
    ``on_rebalance_complete``, resumes the stream partitions, awaits the seek
    to committed offsets and only then resumes flow control, which empties
    every agent's queue. Flow control is open during that await (table
    recovery opened it), so events the fetcher hands over meanwhile reach a
    queue and are thrown away, while the consumer's position has passed
    them: nothing reads them again. Seen on the takeover test: a
    ``cdr.by_caller`` event fetched during the seek, dropped at the resume.

    Suspended here, events wait in the conductor and reach the agents after
    Faust's own resume, once the queues are empty.
    """

    @faust_app.on_rebalance_complete.connect
    async def hold_events(sender: object, **_: object) -> None:
        """Runs before the stream partitions resume (Faust awaits this signal)."""
        faust_app.flow_control.suspend()
