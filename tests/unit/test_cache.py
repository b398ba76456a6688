"""The expiring lookup cache: shared loads, reloads ahead of expiry, errors and discards."""

import asyncio

import pytest

from core.cache import ExpiringCache


class Loader:
    """Counts its loads; each returns the next number after `delay_s`, or raises `error`."""

    def __init__(self, delay_s: float = 0.01):
        self.delay_s, self.calls, self.error = delay_s, 0, None

    async def __call__(self) -> int:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.error:
            raise self.error
        return self.calls


def test_concurrent_misses_share_one_load():
    cache, load = ExpiringCache(ttl_s=10), Loader()

    async def scenario():
        return await asyncio.gather(*[cache.get_or_load("k", load) for _ in range(32)])

    assert asyncio.run(scenario()) == [1] * 32
    assert load.calls == 1


def test_an_entry_past_half_its_life_is_served_while_one_reload_runs():
    cache, load = ExpiringCache(ttl_s=0.2), Loader(delay_s=0.05)

    async def scenario():
        first = await cache.get_or_load("k", load)
        await asyncio.sleep(0.12)  # past half of 0.2 s, not yet expired
        during = await asyncio.gather(*[cache.get_or_load("k", load) for _ in range(8)])
        await asyncio.sleep(0.08)  # the reload has finished
        after = await cache.get_or_load("k", load)
        return first, during, after

    first, during, after = asyncio.run(scenario())
    assert (first, during, after) == (1, [1] * 8, 2)  # nobody waited for the reload
    assert load.calls == 2


def test_an_expired_entry_is_never_served():
    cache, load = ExpiringCache(ttl_s=0.05), Loader(delay_s=0)

    async def scenario():
        await cache.get_or_load("k", load)
        await asyncio.sleep(0.06)
        return await cache.get_or_load("k", load)

    assert asyncio.run(scenario()) == 2


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
    cache, load = ExpiringCache(ttl_s=0.2), Loader(delay_s=0.01)

    async def scenario():
        await cache.get_or_load("k", load)
        await asyncio.sleep(0.12)
        load.error = LookupError("revoked")
        stale = await cache.get_or_load("k", load)  # served; the reload fails behind it
        await asyncio.sleep(0.03)
        with pytest.raises(LookupError):
            await cache.get_or_load("k", load)
        return stale

    assert asyncio.run(scenario()) == 1


def test_a_discard_during_a_load_keeps_the_loaded_value_out():
    cache, load = ExpiringCache(ttl_s=10), Loader(delay_s=0.05)

    async def scenario():
        pending = asyncio.ensure_future(cache.get_or_load("k", load))
        await asyncio.sleep(0.01)
        cache.discard(lambda key: key == "k")  # e.g. the key was revoked meanwhile
        assert await pending == 1  # the request that asked still gets its answer
        return await cache.get_or_load("k", load)

    assert asyncio.run(scenario()) == 2


def test_a_caller_that_goes_away_does_not_cancel_the_shared_load():
    cache, load = ExpiringCache(ttl_s=10), Loader(delay_s=0.05)

    async def scenario():
        leaving = asyncio.ensure_future(cache.get_or_load("k", load))
        staying = asyncio.ensure_future(cache.get_or_load("k", load))
        await asyncio.sleep(0.01)
        leaving.cancel()
        return await staying

    assert asyncio.run(scenario()) == 1
    assert load.calls == 1


def test_a_zero_ttl_keeps_nothing():
    cache, load = ExpiringCache(ttl_s=0), Loader(delay_s=0)

    async def scenario():
        return [await cache.get_or_load("k", load) for _ in range(3)]

    assert asyncio.run(scenario()) == [1, 2, 3]
