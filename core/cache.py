"""A cache whose entries expire, for the lookups the API repeats on every request."""

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from cachetools import TTLCache

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class ExpiringCache(Generic[Key, Value]):
    """Least-recently-used, at most `size` entries, each served at most `ttl_s` seconds after
    it was loaded (0: nothing kept), by `clock`.

    Loads are shared: however many requests miss one key at once, one load runs and all of them
    await it. An entry past half its life is still served while one reload runs in the
    background, so a steady stream of requests neither waits for an expiry nor piles up on one
    (32 concurrent requests each reloading the same entry once stalled the API for 100 ms a
    second).
    """

    def __init__(self, ttl_s: float, size: int = 4096,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl_s, self.clock = ttl_s, clock
        # Each value is kept with the time it was loaded, which says when to reload it.
        self.entries: TTLCache[Key, tuple[float, Value]] = TTLCache(size, ttl_s, clock)
        self.loading: dict[Key, asyncio.Task[Value]] = {}
        # Bumped by `discard`: a load that began before it must not put back what it removed.
        self.generation = 0
        # `discard` may be called from a worker thread (a sync route); the rest runs on the loop.
        self.lock = threading.Lock()

    async def get_or_load(self, key: Key, load: Callable[[], Awaitable[Value]]) -> Value:
        """The value for `key`, loaded by `load()` when it is missing or expired.

        An error from `load()` reaches every request waiting for it and is not cached.
        """
        try:
            with self.lock:  # subscripted: `get` costs twice as much, on every request
                loaded_at, value = self.entries[key]
        except KeyError:
            pass
        else:
            if self.clock() - loaded_at > self.ttl_s / 2 and key not in self.loading:
                self._start_load(key, load).add_done_callback(_retrieve_error)
            return value
        task = self.loading.get(key) or self._start_load(key, load)
        # Shielded: a request that goes away must not cancel the load others are waiting for.
        return await asyncio.shield(task)

    def _start_load(self, key: Key, load: Callable[[], Awaitable[Value]]) -> asyncio.Task[Value]:
        task = self.loading[key] = asyncio.create_task(self._load(key, load))
        return task

    async def _load(self, key: Key, load: Callable[[], Awaitable[Value]]) -> Value:
        generation = self.generation
        try:
            value = await load()
        except BaseException:
            with self.lock:  # what was cached may be what now fails (a revoked key)
                self.entries.pop(key, None)
            raise
        finally:
            del self.loading[key]
        if self.ttl_s > 0:
            with self.lock:
                if generation == self.generation:
                    self.entries[key] = (self.clock(), value)
        return value

    def discard(self, matches: Callable[[Key], bool]) -> None:
        with self.lock:
            self.generation += 1
            for key in [k for k in self.entries if matches(k)]:
                self.entries.pop(key, None)


def _retrieve_error(task: asyncio.Task[Any]) -> None:
    # A background reload's error is for the next request, which loads again and gets it.
    if not task.cancelled():
        task.exception()
