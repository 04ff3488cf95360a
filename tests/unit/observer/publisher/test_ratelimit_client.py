"""Token bucket, coalescing, queue bound; Retry-After parsing, backoff, gzip."""

from __future__ import annotations

import gzip
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.harness.events import make_event
from zastava.observer.publisher.client import Backoff, gzip_bytes, parse_retry_after
from zastava.observer.publisher.ratelimit import Admission, Coalescer, TokenBucket, coalesce_key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_burst_then_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.try_take() for _ in range(6)] == [True] * 5 + [False]
    assert bucket.wait_time() == pytest.approx(0.1)
    clock.now += 0.25
    assert [bucket.try_take() for _ in range(3)] == [True, True, False]
    clock.now += 100
    assert sum(bucket.try_take() for _ in range(10)) == 5  # never more than the burst


def test_coalescing_identical_events_and_queue_bound() -> None:
    clock = Clock()
    limiter = Coalescer(TokenBucket(rate=2, burst=2, clock=clock), max_queue=2)
    a, b, c, d = (make_event(i) for i in range(4))
    assert limiter.offer(a) == Admission.ACCEPT
    assert limiter.offer(b) == Admission.ACCEPT
    assert limiter.offer(c) == Admission.QUEUED
    # the same content at another time (and another id) is a repeat
    repeat = make_event(2, when_us=999_999).with_computed_id()
    assert coalesce_key(repeat) == coalesce_key(c) and repeat.event_id != c.event_id
    for _ in range(4):
        assert limiter.offer(repeat) == Admission.COALESCED
    assert limiter.offer(d) == Admission.QUEUED
    assert limiter.offer(make_event(5)) == Admission.DROPPED
    assert (limiter.coalesced_total, limiter.dropped_total, len(limiter)) == (4, 1, 2)
    assert limiter.release() == []
    clock.now += 0.5
    (released,) = limiter.release()
    assert released.count == 5 and released.when == c.when
    assert released.event_id == released.compute_id() != c.event_id
    clock.now += 0.5
    assert limiter.release() == [d]  # a single event is passed on unchanged
    clock.now += 0.5
    assert limiter.offer(make_event(6)) == Admission.ACCEPT  # queue empty again


def test_drain_releases_everything_regardless_of_rate() -> None:
    limiter = Coalescer(TokenBucket(rate=1, burst=1, clock=Clock()), max_queue=10)
    events = [make_event(i) for i in range(5)]
    outcomes = [limiter.offer(e) for e in events]
    assert outcomes == [Admission.ACCEPT] + [Admission.QUEUED] * 4
    assert limiter.drain() == events[1:] and len(limiter) == 0


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("999999") == 300.0  # capped
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("-3") == 0.0
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30, abs=1)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now.timestamp()) == 0


def test_backoff_is_jittered_exponential_and_capped() -> None:
    backoff = Backoff(base=0.1, cap=2.0, floor=0.01, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(40)]
    assert all(0.01 <= d <= 2.0 for d in delays)
    assert max(delays[:3]) <= 0.4 and max(delays[10:]) > 0.5
    assert len(set(delays)) == len(delays)
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_gzip_round_trip() -> None:
    data = b'{"a":1}\n' * 1000
    packed = gzip_bytes(data)
    assert len(packed) < len(data) // 10 and gzip.decompress(packed) == data
