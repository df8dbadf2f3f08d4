"""The baseline: the Faust pipeline a Faust user would write first for per-caller windows.

One agent decodes ``cdr.raw`` (a JSON object or array per message) and
re-keys every CDR by caller with ``group_by``; a second updates a hopping
windowed table (10 min every 1 min, event time from ``start_time``) once
per CDR: call count, answered count and talk time per caller. No
validation, no dedup, no scoring, no sink: it is the floor of what a
per-caller windowed Faust job costs per event, for :mod:`bench.pipeline`
to compare callguard against.

Run by the benchmark as a subprocess::

    BENCH_TOPIC=raw-xyz BENCH_APP_ID=naive-xyz BENCH_BROKER=kafka://127.0.0.1:9092
    BENCH_WEB_PORT=6099 python -m bench.naive_faust worker -l warn

``GET /count`` on the web port answers ``{"cdrs": N}``: CDRs applied so far.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View

APP_ID = os.environ.get("BENCH_APP_ID", "naive-baseline")
TOPIC = os.environ.get("BENCH_TOPIC", "cdr.raw")

app = faust.App(
    APP_ID,
    broker=os.environ.get("BENCH_BROKER", "kafka://127.0.0.1:9092"),
    store="memory://",
    datadir=os.environ.get("BENCH_DATA_DIR", f"/tmp/{APP_ID}"),  # noqa: S108 - bench scratch
    web_port=int(os.environ.get("BENCH_WEB_PORT", "6099")),
    web_host="127.0.0.1",
    topic_partitions=int(os.environ.get("BENCH_PARTITIONS", "4")),
    consumer_auto_offset_reset="earliest",
    # The embedded broker: Faust's 30 s defaults make every group join wait.
    broker_session_timeout=6.0,
    broker_rebalance_timeout=6.0,
    broker_heartbeat_interval=1.0,
)


class Call(faust.Record, serializer="json"):
    """The fields the baseline keeps of a CDR."""

    caller: str
    start_s: float  # Faust windows count in seconds
    duration_s: float
    answered: bool


raw = app.topic(TOPIC, value_serializer="raw")
windows = (
    app.Table("naive-calls", default=lambda: [0, 0, 0.0], partitions=None)
    .hopping(600, 60, expires=timedelta(hours=1))
    .relative_to_field(Call.start_s)
)
applied = {"cdrs": 0}


def _start_s(value: Any) -> float:
    # The simulator sends epoch ms or RFC 3339 text; the baseline reads both
    # with no checks at all.
    if isinstance(value, int):
        return value / 1000
    return datetime.fromisoformat(value).timestamp()


@app.agent(raw)
async def split(stream: Any) -> None:
    """Decode each message and send every CDR on, keyed by caller (group_by)."""
    async for value in stream:
        decoded = orjson.loads(value)
        for cdr in decoded if isinstance(decoded, list) else [decoded]:
            call = Call(
                caller=cdr["caller"],
                start_s=_start_s(cdr["start_time"]),
                duration_s=float(cdr["duration_s"]),
                answered=cdr["disposition"] == "ANSWERED",
            )
            await by_caller.send(key=call.caller, value=call)


by_caller = app.topic(f"{APP_ID}-by-caller", key_type=str, value_type=Call)


@app.agent(by_caller)
async def count(stream: Any) -> None:
    """One windowed-table update per CDR."""
    async for call in stream.events():
        value: Call = call.value
        current = windows[value.caller].current()
        windows[value.caller] = [
            current[0] + 1,
            current[1] + int(value.answered),
            current[2] + value.duration_s,
        ]
        applied["cdrs"] += 1


@app.page("/count")
async def count_page(web: View, request: Request) -> Response:
    """CDRs applied so far."""
    return web.json(applied)


if __name__ == "__main__":
    app.main()
