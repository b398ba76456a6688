"""A small thread-safe cache whose entries expire, for lookups the API repeats on every request."""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class ExpiringCache:
    """Least-recently-used, at most `size` entries, each kept `ttl_s` seconds (0: none kept)."""

    def __init__(self, ttl_s: float, size: int = 4096):
        self.ttl_s, self.size = ttl_s, size
        self.entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self.entries[key]
                return None
            self.entries.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, value: Any) -> None:
        if self.ttl_s <= 0:
            return
        with self.lock:
            self.entries[key] = (time.monotonic() + self.ttl_s, value)
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)

    def discard(self, matches: Callable[[Hashable], bool]) -> None:
        with self.lock:
            for key in [k for k in self.entries if matches(k)]:
                del self.entries[key]
