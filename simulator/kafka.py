"""Play a run out to Kafka: CDR batches on ``cdr.raw``, complaints on ``complaints``.

Numbers are sent partly in raw formats (``138-0013-8000``, ``0086...``,
``010-12345678``) and times partly as RFC 3339 text, so consumers exercise
the contract's normalisation. A CDR batch is a JSON array, or with
``encoding="arrow"`` an Arrow IPC stream announced by a ``content-type``
header (:mod:`contracts.cdr_arrow`). An Arrow column has one type, so there
text times come by batch: a batch's ``start_time`` is RFC 3339 text with
probability ``raw_format_share``, otherwise epoch-ms integers.

Pacing: with an acceleration ``A``, a message leaves when the wall clock
reaches ``(event_time - start) / A``; with a rate, at most that many CDRs a
second; with neither, as fast as possible.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
import polars as pl
from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from contracts.cdr_arrow import ARROW_STREAM_CONTENT_TYPE, CONTENT_TYPE_HEADER
from simulator.run import Chunk, simulate
from simulator.scenario import Scenario

__all__ = [
    "Encoding",
    "KafkaMessage",
    "ProduceStats",
    "kafka_messages",
    "produce_to_kafka",
    "raw_number_expr",
]

Encoding = Literal["json", "arrow"]
ARROW_HEADERS = ((CONTENT_TYPE_HEADER, ARROW_STREAM_CONTENT_TYPE.encode()),)

_MAX_IN_FLIGHT = 500  # sends awaited in groups, so errors surface and memory stays bounded


@dataclass(frozen=True)
class ProduceStats:
    """What one run sent."""

    cdrs: int
    complaints: int
    messages: int
    seconds: float


@dataclass(frozen=True)
class KafkaMessage:
    """One message to send, and the event time it may not leave before."""

    release_ms: int  # event time the message may not leave before (scaled by acceleration)
    topic: str
    key: bytes | None
    value: bytes
    cdrs: int
    headers: tuple[tuple[str, bytes], ...] = ()


def raw_number_expr(number: pl.Expr, style: pl.Expr) -> pl.Expr:
    """A normalised number rewritten in raw style 1-3 (0 keeps it as it is)."""
    national = number.str.slice(3)
    is_mobile = number.str.starts_with("+861") & (number.str.len_chars() == 14)
    is_400 = number.str.starts_with("+86400") | number.str.starts_with("+86800")
    is_fixed = number.str.starts_with("+86") & ~is_mobile & ~is_400
    area_digits = pl.when(national.str.slice(0, 1).is_in(["1", "2"])).then(2).otherwise(3)
    area = national.str.slice(0, area_digits)
    local = national.str.slice(area_digits)
    mobile = (
        pl.when(style == 1)
        .then(national)
        .when(style == 2)
        .then(
            pl.concat_str(
                [national.str.slice(0, 3), national.str.slice(3, 4), national.str.slice(7)],
                separator="-",
            )
        )
        .otherwise(pl.lit("0086") + national)
    )
    fixed = (
        pl.when(style == 1)
        .then(pl.lit("0") + national)
        .when(style == 2)
        .then(pl.lit("0") + area + pl.lit("-") + local)
        .otherwise(pl.lit("(0") + area + pl.lit(")") + local)
    )
    non_geographic = (
        pl.when(style == 3)
        .then(pl.lit("0086") + national)
        .otherwise(
            pl.concat_str(
                [national.str.slice(0, 3), national.str.slice(3, 3), national.str.slice(6)],
                separator="-",
            )
        )
    )
    return (
        pl.when(style == 0)
        .then(number)
        .when(is_mobile)
        .then(mobile)
        .when(is_fixed)
        .then(fixed)
        .when(is_400)
        .then(non_geographic)
        .otherwise(number)
    )


def _raw_cdr_frame(chunk: Chunk, scenario: Scenario) -> pl.DataFrame:
    """The chunk's CDRs with numbers in raw styles and each time also as text.

    ``as_text`` marks the rows a JSON batch sends with a text time.
    """
    rng = np.random.default_rng([scenario.seed, 2, chunk.index])
    rows = chunk.cdrs.height
    share = scenario.output.raw_format_share

    def styles() -> np.ndarray:
        return np.where(rng.random(rows) < share, rng.integers(1, 4, rows), 0)

    return chunk.cdrs.with_columns(
        caller_style=pl.Series(styles()),
        callee_style=pl.Series(styles()),
        as_text=pl.Series(rng.random(rows) < share),
    ).select(
        "cdr_id",
        raw_number_expr(pl.col("caller"), pl.col("caller_style")).alias("caller"),
        raw_number_expr(pl.col("callee"), pl.col("callee_style")).alias("callee"),
        pl.col("start_ms").alias("start_time"),
        pl.col("start_time")
        .dt.convert_time_zone("Asia/Shanghai")
        .dt.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .alias("start_text"),
        "as_text",
        "duration_s",
        "disposition",
        "ring_s",
        "carrier",
    )


def _json_batches(frame: pl.DataFrame, batch_size: int) -> list[bytes]:
    records = frame.with_columns(
        pl.when("as_text").then(pl.col("start_text")).alias("start_text")
    ).to_dicts()
    for record in records:
        text = record.pop("start_text")
        del record["as_text"]
        if text is not None:
            record["start_time"] = text
    return [
        orjson.dumps(records[begin : begin + batch_size])
        for begin in range(0, len(records), batch_size)
    ]


def _arrow_batches(
    frame: pl.DataFrame, batch_size: int, text_share: float, rng: np.random.Generator
) -> list[bytes]:
    batches = []
    for begin in range(0, frame.height, batch_size):
        batch = frame.slice(begin, batch_size)
        if rng.random() < text_share:
            batch = batch.with_columns(pl.col("start_text").alias("start_time"))
        buffer = io.BytesIO()
        batch.drop("start_text", "as_text").with_columns(
            pl.col("disposition").cast(pl.Categorical)
        ).write_ipc_stream(buffer)
        batches.append(buffer.getvalue())
    return batches


def kafka_messages(
    chunk: Chunk,
    scenario: Scenario,
    *,
    topic: str,
    complaints_topic: str,
    batch_size: int,
    encoding: Encoding = "json",
) -> list[KafkaMessage]:
    """One chunk's messages in release order: CDR batches and complaints (JSON)."""
    frame = _raw_cdr_frame(chunk, scenario)
    if encoding == "arrow":
        rng = np.random.default_rng([scenario.seed, 3, chunk.index])
        share = scenario.output.raw_format_share
        values, headers = _arrow_batches(frame, batch_size, share, rng), ARROW_HEADERS
    else:
        values, headers = _json_batches(frame, batch_size), ()
    start_ms = chunk.cdrs["start_ms"].to_list()
    messages = [
        KafkaMessage(start_ms[end - 1], topic, None, value, end - begin, headers)
        for value, begin in zip(values, range(0, frame.height, batch_size), strict=True)
        for end in [min(begin + batch_size, frame.height)]
    ]
    for complaint in chunk.complaints.drop("is_noise").to_dicts():
        messages.append(
            KafkaMessage(
                complaint["time_ms"],
                complaints_topic,
                complaint["reported"].encode(),
                orjson.dumps(complaint),
                0,
            )
        )
    messages.sort(key=lambda message: message.release_ms)
    return messages


class _Pacer:
    def __init__(self, start_ms: int, rate: float | None, acceleration: float | None) -> None:
        self.start_ms, self.rate, self.acceleration = start_ms, rate, acceleration
        self.wall_start = time.monotonic()
        self.sent_cdrs = 0

    async def wait(self, message: KafkaMessage) -> None:
        due = 0.0
        if self.acceleration:
            due = (message.release_ms - self.start_ms) / 1000 / self.acceleration
        if self.rate:
            due = max(due, (self.sent_cdrs + message.cdrs) / self.rate)
        self.sent_cdrs += message.cdrs
        delay = self.wall_start + due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def produce_to_kafka(
    scenario: Scenario,
    bootstrap: str,
    *,
    topic: str = "cdr.raw",
    complaints_topic: str = "complaints",
    rate: float | None = None,
    acceleration: float | None = None,
    batch_size: int | None = None,
    encoding: Encoding = "json",
    progress: bool = False,
) -> ProduceStats:
    """Simulate ``scenario`` and send it to the broker at ``bootstrap``.

    ``rate``, ``acceleration`` and ``batch_size`` default to the scenario's
    ``output`` settings; ``encoding`` is that of the CDR batches (``json``
    or ``arrow``). Returns what was sent.
    """
    output = scenario.output
    rate = output.rate if rate is None else rate
    acceleration = output.acceleration if acceleration is None else acceleration
    batch_size = output.batch_size if batch_size is None else batch_size
    loop = asyncio.get_running_loop()
    chunks: Iterator[Chunk] = simulate(scenario)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_request_size=8 * 1024 * 1024
    )
    pacer = _Pacer(scenario.start_ms, rate, acceleration)
    cdrs = complaints = sent = 0
    in_flight: list[asyncio.Future[Any]] = []
    started = time.monotonic()
    await producer.start()
    try:
        with tqdm(
            total=scenario.hours, unit="h", desc=f"produce {scenario.name}", disable=not progress
        ) as bar:
            # Generating an hour takes tens of milliseconds: keep it off the event loop.
            while (chunk := await loop.run_in_executor(None, next, chunks, None)) is not None:
                messages = kafka_messages(
                    chunk,
                    scenario,
                    topic=topic,
                    complaints_topic=complaints_topic,
                    batch_size=batch_size,
                    encoding=encoding,
                )
                for message in messages:
                    await pacer.wait(message)
                    in_flight.append(
                        await producer.send(
                            message.topic,
                            message.value,
                            key=message.key,
                            headers=list(message.headers) or None,
                        )
                    )
                    if len(in_flight) >= _MAX_IN_FLIGHT:
                        await asyncio.gather(*in_flight)
                        in_flight.clear()
                sent += len(messages)
                cdrs += chunk.cdrs.height
                complaints += chunk.complaints.height
                bar.update(1)
        await asyncio.gather(*in_flight)
        await producer.flush()
    finally:
        await producer.stop()
    return ProduceStats(cdrs, complaints, sent, time.monotonic() - started)
