"""The expiring lookup cache: shared loads, reloads ahead of expiry, errors and discards.

Time is a clock the tests move by hand, and a load returns when the test opens its gate: no
outcome depends on how fast the machine runs.
"""

import asyncio

import pytest

from core.cache import ExpiringCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Counts its loads; each returns the next number once `gate` is open, or raises `error`."""

    def __init__(self) -> None:
        self.calls, self.error = 0, None
        self.started, self.gate = asyncio.Event(), asyncio.Event()
        self.gate.set()

    async def __call__(self) -> int:
        self.calls += 1
        self.started.set()
        await self.gate.wait()
        if self.error:
            raise self.error
        return self.calls


async def settled(cache: ExpiringCache) -> None:
    """Until the loads in progress (background reloads included) have ended."""
    await asyncio.gather(*cache.loading.values(), return_exceptions=True)


def test_concurrent_misses_share_one_load():
    cache, load = ExpiringCache(ttl_s=10), Loader()

    async def scenario():
        return await asyncio.gather(*[cache.get_or_load("k", load) for _ in range(32)])

    assert asyncio.run(scenario()) == [1] * 32
    assert load.calls == 1


def test_an_entry_past_half_its_life_is_served_while_one_reload_runs():
    clock, load = Clock(), Loader()
    cache = ExpiringCache(ttl_s=10, clock=clock)

    async def scenario():
        first = await cache.get_or_load("k", load)
        clock.now = 4.9  # not yet half its life: no reload
        early = await cache.get_or_load("k", load)
        clock.now = 6  # past half, not yet expired
        load.gate.clear()
        during = await asyncio.gather(*[cache.get_or_load("k", load) for _ in range(8)])
        load.gate.set()
        await settled(cache)
        after = await cache.get_or_load("k", load)
        return first, early, during, after

    first, early, during, after = asyncio.run(scenario())
    assert (first, early, during, after) == (1, 1, [1] * 8, 2)  # nobody waited for the reload
    assert load.calls == 2


def test_an_expired_entry_is_never_served():
    clock, load = Clock(), Loader()
    cache = ExpiringCache(ttl_s=10, clock=clock)

    async def scenario():
        await cache.get_or_load("k", load)
        clock.now = 10
        return await cache.get_or_load("k", load)

    assert asyncio.run(scenario()) == 2


def test_the_least_recently_used_entry_goes_first():
    cache, load = ExpiringCache(ttl_s=10, size=2), Loader()

    async def scenario():
        for key in ("a", "b", "a", "c"):  # "a" used again after "b": "b" makes room for "c"
            await cache.get_or_load(key, load)
        return [await cache.get_or_load(key, load) for key in ("a", "c", "b")]

    assert asyncio.run(scenario()) == [1, 3, 4]


def test_an_error_reaches_every_waiter_and_is_not_cached():
    cache, load = ExpiringCache(ttl_s=10), Loader()
    load.error = LookupError("revoked")

    async def scenario():
        results = await asyncio.gather(*[cache.get_or_load("k", load) for _ in range(4)],
                                       return_exceptions=True)
        load.error = None
        return results, await cache.get_or_load("k", load)

    results, later = asyncio.run(scenario())
    assert [str(r) for r in results] == ["revoked"] * 4
    assert load.calls == 2 and later == 2


def test_a_failed_background_reload_drops_the_entry():
    clock, load = Clock(), Loader()
    cache = ExpiringCache(ttl_s=10, clock=clock)

    async def scenario():
        await cache.get_or_load("k", load)
        clock.now = 6
        load.error = LookupError("revoked")
        stale = await cache.get_or_load("k", load)  # served; the reload fails behind it
        await settled(cache)
        with pytest.raises(LookupError):
            await cache.get_or_load("k", load)
        return stale

    assert asyncio.run(scenario()) == 1


def test_a_discard_during_a_load_keeps_the_loaded_value_out():
    cache, load = ExpiringCache(ttl_s=10), Loader()

    async def scenario():
        load.gate.clear()
        pending = asyncio.ensure_future(cache.get_or_load("k", load))
        await load.started.wait()
        cache.discard(lambda key: key == "k")  # e.g. the key was revoked meanwhile
        load.gate.set()
        assert await pending == 1  # the request that asked still gets its answer
        return await cache.get_or_load("k", load)

    assert asyncio.run(scenario()) == 2


def test_a_caller_that_goes_away_does_not_cancel_the_shared_load():
    cache, load = ExpiringCache(ttl_s=10), Loader()

    async def scenario():
        load.gate.clear()
        leaving = asyncio.ensure_future(cache.get_or_load("k", load))
        staying = asyncio.ensure_future(cache.get_or_load("k", load))
        await load.started.wait()
        leaving.cancel()
        load.gate.set()
        return await staying

    assert asyncio.run(scenario()) == 1
    assert load.calls == 1


def test_a_zero_ttl_keeps_nothing():
    cache, load = ExpiringCache(ttl_s=0), Loader()

    async def scenario():
        return [await cache.get_or_load("k", load) for _ in range(3)]

    assert asyncio.run(scenario()) == [1, 2, 3]
