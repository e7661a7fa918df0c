"""Per-key concurrency limits shared through Redis (several processes, one limit), with leases that
free the slots of a process that died, and a per-process fallback while Redis is down."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest

from grounding.server.limits import ConcurrencyLimiter, ConcurrencyLimitError, RedisConcurrencyLimiter


def run(coro):
    return asyncio.run(coro)


def test_the_limit_holds_across_limiters_sharing_a_redis(redis_url):
    one, two = RedisConcurrencyLimiter(2, redis_url), RedisConcurrencyLimiter(2, redis_url)
    try:
        a = run(one.enter("app", 2))
        b = run(two.enter("app", 2))
        with pytest.raises(ConcurrencyLimitError):
            run(one.enter("app", 2))
        with pytest.raises(ConcurrencyLimitError):
            run(two.enter("app", 2))
        other = run(two.enter("other-key", 2))  # keys are counted apart
        run(one.leave(a))
        c = run(two.enter("app", 2))
        assert a.member and c.member and a.member != c.member
        for limiter, slot in ((two, b), (two, c), (two, other)):
            run(limiter.leave(slot))
    finally:
        one.close(), two.close()


def test_a_process_that_dies_frees_its_slots_when_their_leases_end(redis_url):
    dead, alive = RedisConcurrencyLimiter(1, redis_url, lease_s=0.6), RedisConcurrencyLimiter(1, redis_url, lease_s=0.6)
    try:
        run(dead.enter("app", 1))
        dead.close()  # gone without giving its slot back (no renewals any more)
        with pytest.raises(ConcurrencyLimitError):
            run(alive.enter("app", 1))
        time.sleep(0.8)
        slot = run(alive.enter("app", 1))
        time.sleep(0.8)  # a live holder renews its lease: nobody else gets in meanwhile
        with pytest.raises(ConcurrencyLimitError):
            run(alive.enter("app", 1))
        run(alive.leave(slot))
    finally:
        alive.close()


def test_without_redis_the_limit_is_counted_per_process(caplog):
    caplog.set_level(logging.WARNING, logger="grounding.limits")
    limiter = RedisConcurrencyLimiter(1, "redis://127.0.0.1:1/0")
    try:
        slot = run(limiter.enter("app", 1))
        assert slot.member is None  # counted here
        with pytest.raises(ConcurrencyLimitError):
            run(limiter.enter("app", 1))
        run(limiter.leave(slot))
        run(limiter.leave(run(limiter.enter("app", 1))))
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1 and "unavailable" in warnings[0] and "per process" in warnings[0]
        assert limiter.status()["degraded"]
    finally:
        limiter.close()


def test_the_in_process_limiter():
    limiter = ConcurrencyLimiter(1)
    slot = run(limiter.enter("k", 1))
    with pytest.raises(ConcurrencyLimitError):
        run(limiter.enter("k", 1))
    run(limiter.leave(slot))
    assert limiter.active("k") == 0
