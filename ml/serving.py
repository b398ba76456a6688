"""ONNX Runtime serving: the predictor, request instance checks and adaptive batching.

Imports neither framework, so the API can serve without TensorFlow or torch.
"""

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ml.onnx_export import INPUT_NAME, OUTPUT_NAME


class InstanceError(ValueError):
    def __init__(self, index: int, message: str):
        self.index = index
        super().__init__(f"instances[{index}]: {message}")


def to_batch(instances: list[Any], input_shape: list[int]) -> np.ndarray:
    """Turn JSON instances into a float32 batch, naming the first bad instance.

    An instance may be given in the input's shape or flat with the same number of values.
    """
    size = math.prod(input_shape)
    try:  # the common case in one conversion; anything irregular is looked at one by one
        batch = np.asarray(instances, dtype=np.float32)
    except (ValueError, TypeError):
        batch = None
    if batch is None or batch.size != len(instances) * size:
        batch = np.stack([_instance(index, instance, input_shape, size)
                          for index, instance in enumerate(instances)])
    batch = batch.reshape(len(instances), *input_shape)
    finite = np.isfinite(batch).reshape(len(batch), -1).all(axis=1)
    if not finite.all():
        raise InstanceError(int(np.argmin(finite)), "contains NaN or infinite values")
    return batch


def _instance(index: int, instance: Any, input_shape: list[int], size: int) -> np.ndarray:
    try:
        array = np.asarray(instance, dtype=np.float32)
    except (ValueError, TypeError):
        raise InstanceError(index, f"expected numbers in shape {input_shape}, received "
                                   f"{_preview(instance)}") from None
    if array.size != size:
        raise InstanceError(index, f"expected {size} values in shape {input_shape}, "
                                   f"received {array.size} ({_preview(instance)})")
    return array


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class Predictor:
    session: ort.InferenceSession
    # CPU seconds per call, by batch size rounded up to a power of two: a moving average of what
    # this session's calls cost, which decides where the next call of that size runs.
    seconds: dict[int, float] = field(default_factory=dict)
    # The CPU clock of ONNX Runtime's thread when it last finished a `predict_async` call (a
    # thread's clock starts at zero).
    async_thread_cpu: float = 0.0

    @classmethod
    def load(cls, onnx_path: Path) -> "Predictor":
        # About one thread per call: concurrent calls use the other cores, and the calling
        # thread's CPU time is nearly the whole cost of a call. The intra-op pool's one thread
        # (the second of two) is where `predict_async` runs; a direct call may borrow it for a
        # large operator. It sleeps, not spins, between calls.
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return cls(ort.InferenceSession(str(onnx_path), options,
                                        providers=["CPUExecutionProvider"]))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        # CPU time, not wall time: a call in a worker thread also waits for the interpreter lock
        # the event loop holds (up to 5 ms), and timed by the clock, a 10 µs call looked slow
        # and never came back to the loop.
        started = time.thread_time()
        outputs: np.ndarray = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        self._record(len(batch), time.thread_time() - started)
        return outputs

    async def predict_async(self, batch: np.ndarray) -> np.ndarray:
        """`predict` on ONNX Runtime's own thread, one call at a time.

        A Python thread must take the interpreter lock to start a call, and a busy event loop
        holds it for up to its switch interval (5 ms): handed to a thread, a batch waited a
        median 3 ms before it started. ONNX Runtime's thread starts at once; only the answer
        waits for the lock.
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[np.ndarray] = loop.create_future()

        # On ONNX Runtime's thread.
        def finished(outputs: list[np.ndarray], _: None, error: str) -> None:
            clock = time.thread_time()  # that thread's CPU is, nearly all, these calls'
            self._record(len(batch), clock - self.async_thread_cpu)
            self.async_thread_cpu = clock
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(_settle, answer, outputs, error)

        self.session.run_async([OUTPUT_NAME], {INPUT_NAME: batch}, finished, None)
        return await answer

    def _record(self, rows: int, took: float) -> None:
        bucket = _bucket(rows)
        previous = self.seconds.get(bucket)
        self.seconds[bucket] = took if previous is None else 0.8 * previous + 0.2 * took

    def expected_seconds(self, rows: int) -> float:
        """What a call of `rows` rows is expected to take: the average of its size, or for a
        size not timed yet, that of the largest smaller size timed, scaled by the rows (an
        overestimate: the cost per row falls as batches grow); infinite until then.

        Without the estimate, a size that the batcher never forms stays unknown, treated as
        slow: batches of it would wait their full delay to fill, and be split."""
        bucket = _bucket(rows)
        if bucket in self.seconds:
            return self.seconds[bucket]
        smaller = [timed for timed in self.seconds if timed < bucket]
        if not smaller:
            return math.inf
        nearest = max(smaller)
        return self.seconds[nearest] * bucket / nearest


def _bucket(rows: int) -> int:
    return 1 << (rows - 1).bit_length()


def _settle(answer: asyncio.Future[np.ndarray], outputs: list[np.ndarray], error: str) -> None:
    if answer.done():  # its caller went away
        return
    if error:
        answer.set_exception(RuntimeError(f"ONNX Runtime: {error}"))
    else:
        answer.set_result(outputs[0])


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int  # instances per merged call; 1 turns batching off
    max_delay_ms: float  # the longest the oldest waiting request waits for the batch to fill


@dataclass
class _Waiting:
    batch: np.ndarray
    future: asyncio.Future[tuple[np.ndarray, int]]  # its rows of the outputs, the batch size
    arrived: float


@dataclass
class _Lane:
    """The requests waiting for one model version, and its calls in flight."""

    predictor: Predictor
    policy: BatchPolicy
    waiting: deque[_Waiting] = field(default_factory=deque)
    # Set on each arrival and at the end of each call: what the drainer waits for.
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    drainer: asyncio.Task[None] | None = None
    calls: set[asyncio.Task[None]] = field(default_factory=set)


class AdaptiveBatcher:
    """Merges concurrent requests for one model version into ONNX Runtime calls.

    A request that finds its version idle runs at once, alone. Requests that arrive while a
    call is running are merged, up to `max_batch_size` instances; only when more than one is
    waiting does the batch wait for more to fill it, up to `max_delay_ms` (counted from the
    oldest one's arrival) and never longer than the call itself is expected to take.

    Two calls per version may be in flight: while one computes, the next is already queued
    behind it on the session's ONNX Runtime thread, and the event loop answers and parses one
    group of requests while the other group computes. So that there are two groups, an idle
    version splits what waits (four requests or more) in two halves, one call each; merged
    into one batch, they came back together and were sent together, and the thread idled
    while the loop worked. Against one call at a time: 1.1 to 1.4 times the requests per
    second at concurrency 2 to 32, on models whose one-instance call takes 0.3 to 1.5 ms.

    Inference runs off the event loop, except a call that this session has shown to take at
    most `inline_max_s`: handing a call over and back costs 0.1 to 0.3 ms of latency, more than
    a small model's whole inference and more than the loop spends parsing the request's JSON.
    Such calls run one at a time, unsplit. A lone request on an idle version runs in a Python
    thread, which an idle loop wakes 0.25 ms sooner and whose call may use both of the
    session's threads; with batching off, those run concurrently. Other calls run on the
    session's ONNX Runtime thread (`Predictor.predict_async`): with other requests around, the
    loop is busy, and a Python thread would first wait for its interpreter lock.
    """

    CALLS_IN_FLIGHT = 2
    SPLIT_FROM = 4  # waiting requests; fewer are merged into one call

    def __init__(self, inline_max_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lanes: dict[Hashable, _Lane] = {}
        self.inline_max_s = inline_max_s
        self.clock = clock  # when requests arrive and when a batch stops waiting to fill

    def _inline(self, predictor: Predictor, rows: int) -> bool:
        return predictor.expected_seconds(rows) <= self.inline_max_s

    async def _run(self, predictor: Predictor, batch: np.ndarray,
                   alone: bool = True) -> np.ndarray:
        """`batch` through `predictor`; `alone`: no other request of its version is around."""
        if self._inline(predictor, len(batch)):
            return predictor.predict(batch)
        if alone:
            return await asyncio.to_thread(predictor.predict, batch)
        return await predictor.predict_async(batch)

    async def predict(self, key: Hashable, predictor: Predictor, batch: np.ndarray,
                      policy: BatchPolicy) -> tuple[np.ndarray, int]:
        """The outputs for `batch` and the size of the batch they were computed in."""
        if policy.max_batch_size <= 1:
            return await self._run(predictor, batch), len(batch)
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = _Lane(predictor, policy)
        lane.predictor, lane.policy = predictor, policy
        waiting = _Waiting(batch, asyncio.get_running_loop().create_future(), self.clock())
        lane.waiting.append(waiting)
        lane.changed.set()
        if lane.drainer is None:
            lane.drainer = asyncio.create_task(self._drain(key, lane))
        return await waiting.future

    async def _drain(self, key: Hashable, lane: _Lane) -> None:
        while lane.waiting or lane.calls:
            if not lane.waiting or len(lane.calls) >= self.CALLS_IN_FLIGHT:
                lane.changed.clear()
                await lane.changed.wait()
                continue
            await self._fill(lane)
            idle = not lane.calls
            rows = sum(len(w.batch) for w in lane.waiting)
            split = (idle and len(lane.waiting) >= self.SPLIT_FROM
                     and not self._inline(lane.predictor, rows))
            taken = self._take(lane, math.ceil(rows / 2) if split else rows)
            if not taken:
                continue
            call = self._call(lane.predictor, taken,
                              alone=idle and len(taken) == 1 and not lane.waiting)
            if self._inline(lane.predictor, sum(len(w.batch) for w in taken)):
                await call  # on the loop, at once: the next batch is taken after it
            else:
                task = asyncio.create_task(call)
                lane.calls.add(task)
                task.add_done_callback(partial(self._ended, lane))
        # No await since the last check: nothing can have arrived in between.
        del self.lanes[key]

    @staticmethod
    def _ended(lane: _Lane, call: asyncio.Task[None]) -> None:
        lane.calls.discard(call)
        lane.changed.set()

    async def _call(self, predictor: Predictor, taken: list[_Waiting], alone: bool) -> None:
        """One call for the `taken` requests; each gets its rows of the outputs or the error."""
        try:
            merged = taken[0].batch if len(taken) == 1 else np.concatenate(
                [w.batch for w in taken])
            outputs = await self._run(predictor, merged, alone)
        except Exception as error:  # every request of the batch gets the failure
            for w in taken:
                if not w.future.done():
                    w.future.set_exception(error)
            return
        start = 0
        for w in taken:
            if not w.future.done():  # a caller that went away is simply skipped
                w.future.set_result((outputs[start:start + len(w.batch)], len(merged)))
            start += len(w.batch)

    async def _fill(self, lane: _Lane) -> None:
        policy = lane.policy
        rows = sum(len(w.batch) for w in lane.waiting)
        # Waiting longer than the call would take cannot pay: run what is here, and what arrives
        # meanwhile makes the next batch. On a small model this merges only what is already
        # waiting; on a large one it waits up to `max_delay_ms`.
        delay = min(policy.max_delay_ms / 1000, lane.predictor.expected_seconds(rows))
        deadline = lane.waiting[0].arrived + delay
        while (len(lane.waiting) > 1
               and sum(len(w.batch) for w in lane.waiting) < policy.max_batch_size):
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            lane.changed.clear()
            try:
                await asyncio.wait_for(lane.changed.wait(), remaining)
            except TimeoutError:
                return

    @staticmethod
    def _take(lane: _Lane, limit: int) -> list[_Waiting]:
        """The oldest requests that fit in one batch of at most `limit` rows (and the policy's
        `max_batch_size`); always at least one."""
        limit = min(limit, lane.policy.max_batch_size)
        taken: list[_Waiting] = []
        rows = 0
        while lane.waiting:
            head = lane.waiting[0]
            if head.future.done():  # cancelled while waiting
                lane.waiting.popleft()
                continue
            if taken and rows + len(head.batch) > limit:
                break
            taken.append(lane.waiting.popleft())
            rows += len(head.batch)
        return taken
