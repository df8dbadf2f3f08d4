"""The background population: subscribers, their call rates and their social graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.numbering import (
    NumberAllocator,
    fixed_numbers,
    mobile_numbers,
    mobile_segments,
    virtual_operator_numbers,
)
from simulator.scenario import SubscriberSettings

__all__ = ["Population", "build_population"]

_SUBSCRIBERS_PER_SEGMENT = 1000  # a tenth of a 7-digit segment's 10,000 numbers
_MAX_CONTACTS = 1000


@dataclass(frozen=True)
class Population:
    """Subscribers as arrays; person ``i`` is row ``i`` everywhere."""

    codes: np.ndarray  # int64 number codes
    daily_calls: np.ndarray  # expected outgoing calls a weekday, heavy-tailed
    rate_cdf: np.ndarray  # cumulative share of calls, to pick callers by rate
    contact_offsets: np.ndarray  # CSR: person i's contacts are contacts[offsets[i]:offsets[i+1]]
    contacts: np.ndarray  # person indices
    segments: np.ndarray  # the 7-digit mobile segments the population lives in
    work_callers: np.ndarray  # busy subscribers (sales people, shop owners), by index
    work_calls: np.ndarray  # their expected work calls a weekday
    work_cdf: np.ndarray  # cumulative share of work calls, to pick them by rate
    callback_rate: np.ndarray  # chance that a missed call of this person's is returned

    @property
    def size(self) -> int:
        """Number of subscribers."""
        return int(self.codes.size)

    def contact_counts(self) -> np.ndarray:
        """Contacts per person."""
        return np.diff(self.contact_offsets)


def build_population(
    settings: SubscriberSettings, rng: np.random.Generator, allocator: NumberAllocator
) -> Population:
    """Numbers, rates and a reciprocal contact graph for ``settings.count`` people."""
    mobile_count = round(settings.count * settings.mobile_share)
    segments = mobile_segments(rng, max(1, -(-mobile_count // _SUBSCRIBERS_PER_SEGMENT)))
    # Drawn only with a share, so scenarios without one keep their random streams.
    virtual_count = round(mobile_count * settings.virtual_share)
    mobile = allocator.take(
        lambda r, n: mobile_numbers(r, n, segments), rng, mobile_count - virtual_count
    )
    if virtual_count:
        virtual = allocator.take(virtual_operator_numbers, rng, virtual_count)
        mobile = np.concatenate([mobile, virtual])
    fixed = allocator.take(fixed_numbers, rng, settings.count - mobile_count)
    codes = rng.permutation(np.concatenate([mobile, fixed]))

    offsets, contacts = _contact_graph(rng, settings.count, settings.contacts_mean)
    degree = np.diff(offsets)
    # Heavy tail: log-normal activity, a little higher for people with more contacts.
    sigma = settings.activity_sigma
    activity = rng.lognormal(-0.5 * sigma**2, sigma, settings.count)
    activity *= np.sqrt((degree + 1) / (degree.mean() + 1))
    daily_calls = activity / activity.mean() * settings.calls_per_day
    rate_cdf = np.cumsum(daily_calls) / daily_calls.sum()
    # Some ordinary subscribers call for work too: sales people, shop owners and agents
    # ringing dozens of customers a day, so heavy callers are not all nuisance callers.
    busy_count = round(settings.count * settings.busy_share)
    work_callers = np.sort(rng.choice(settings.count, busy_count, replace=False))
    work_calls = settings.busy_calls_per_day * rng.lognormal(-0.5 * 0.8**2, 0.8, busy_count)
    work_cdf = np.cumsum(work_calls) / max(work_calls.sum(), 1e-9)
    # Whether people return your missed calls depends on who you are to them. Drawn only
    # with a spread, so scenarios without one keep their random streams and their data.
    callback_rate = np.full(settings.count, settings.callback_rate)
    if settings.callback_rate_spread > 0:
        low = settings.callback_rate - settings.callback_rate_spread
        high = settings.callback_rate + settings.callback_rate_spread
        callback_rate = np.clip(rng.uniform(low, high, settings.count), 0.0, 1.0)
    return Population(
        codes,
        daily_calls,
        rate_cdf,
        offsets,
        contacts,
        segments,
        work_callers,
        work_calls,
        work_cdf,
        callback_rate,
    )


def _contact_graph(
    rng: np.random.Generator, count: int, mean_degree: float
) -> tuple[np.ndarray, np.ndarray]:
    """An undirected configuration-model graph: if A has B as a contact, B has A."""
    sigma = 0.8
    degree = np.rint(rng.lognormal(np.log(mean_degree) - 0.5 * sigma**2, sigma, count))
    degree = np.clip(degree, 1, _MAX_CONTACTS).astype(np.int64)
    stubs = rng.permutation(np.repeat(np.arange(count, dtype=np.int64), degree))
    stubs = stubs[: stubs.size - stubs.size % 2].reshape(-1, 2)
    stubs = stubs[stubs[:, 0] != stubs[:, 1]]
    source = np.concatenate([stubs[:, 0], stubs[:, 1]])
    target = np.concatenate([stubs[:, 1], stubs[:, 0]])
    order = np.argsort(source, kind="stable")
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(source, minlength=count), out=offsets[1:])
    return offsets, target[order]
