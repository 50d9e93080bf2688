"""A client for sealtrail's ingest edge (`POST /v1/ingest/events`).

Events are queued in memory (bounded), sent in batches by a background thread over HTTP/2 where
the server offers it, and retried with jittered exponential backoff when the edge or Kafka cannot
take them now (connection errors, 429, 503, `not_acknowledged`). Every event carries an
idempotency key, so a retry is sealed once. An event the edge refuses for good is handed to
`on_rejected` with the edge's reason: nothing is dropped silently. The queue is flushed when the
process exits.
"""

from __future__ import annotations

import atexit
import collections
import random
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Optional

import httpx

from .events import Event

#: Statuses worth trying again: the edge or Kafka cannot take the events now.
_RETRYABLE = {429, 500, 502, 503, 504}


class QueueFull(Exception):
    """The local queue is full: the edge has not kept up for a while."""


@dataclass
class Rejection:
    """An event the edge refused for good, and why (the DLQ's reason codes, `invalid_json`, or
    the refusal of the whole request, such as `forbidden`)."""

    event: Event
    reason: str
    detail: str


@dataclass
class Stats:
    accepted: int = 0
    rejected: int = 0
    retries: int = 0
    #: The HTTP version of the last answer ("HTTP/2" or "HTTP/1.1").
    http_version: Optional[str] = None


def _has_h2() -> bool:
    try:
        import h2  # noqa: F401
    except ImportError:
        return False
    return True


class Client:
    """Sends `tenant`'s audit events to the edge at `url` with a producer `api_key`."""

    def __init__(
        self,
        url: str,
        api_key: str,
        tenant: str,
        *,
        ca_file: Optional[str] = None,
        batch_size: int = 100,
        max_queue: int = 10_000,
        flush_interval: float = 0.5,
        max_retries: int = 8,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
        timeout: float = 30.0,
        on_rejected: Optional[Callable[[Rejection], None]] = None,
    ) -> None:
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be between 1 and 1000 (the edge's limit per request)")
        self._endpoint = url.rstrip("/") + "/v1/ingest/events"
        self._tenant = tenant
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._flush_interval = flush_interval
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._on_rejected = on_rejected
        verify: object = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._http = httpx.Client(
            http2=_has_h2(),
            verify=verify,
            timeout=timeout,
            headers={"Authorization": f"Bearer {api_key}", "X-Tenant-Id": tenant},
        )
        self._queue: Deque[Event] = collections.deque()
        self._in_flight = 0
        self._closed = False
        self._lock = threading.Condition()
        self.stats = Stats()
        self.rejections: List[Rejection] = []
        self._thread = threading.Thread(target=self._run, name="sealtrail-sender", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # The producer's side.

    def emit(self, event: Event, block: bool = True, timeout: Optional[float] = None) -> str:
        """Queues `event` and returns its id; waits while the queue is full (or raises
        `QueueFull` when `block` is false or `timeout` passes)."""
        event.complete(self._tenant)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            while len(self._queue) >= self._max_queue:
                remaining = None if deadline is None else deadline - time.monotonic()
                if not block or (remaining is not None and remaining <= 0):
                    raise QueueFull(f"{self._max_queue} events are waiting for the edge")
                self._lock.wait(remaining)
            self._queue.append(event)
            self._lock.notify_all()
        assert event.event_id is not None
        return event.event_id

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every queued event is answered; False if `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._lock.notify_all()
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining if remaining is not None else 0.1)
        return True

    def close(self, timeout: Optional[float] = 30.0) -> None:
        """Flushes, then stops the sender; called at exit too."""
        if self._closed:
            return
        self.flush(timeout)
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout)
        self._http.close()

    # The sender's side.

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    if self._closed:
                        return
                    self._lock.wait(self._flush_interval)
                    continue
                if len(self._queue) < self._batch_size and not self._closed:
                    # Let a batch fill for a moment, unless someone waits for a flush.
                    self._lock.wait(self._flush_interval / 10)
                batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
                self._in_flight = len(batch)
                self._lock.notify_all()
            try:
                self._send(batch)
            finally:
                with self._lock:
                    self._in_flight = 0
                    self._lock.notify_all()

    def _reject(self, event: Event, reason: str, detail: str) -> None:
        rejection = Rejection(event, reason, detail)
        self.stats.rejected += 1
        self.rejections.append(rejection)
        if self._on_rejected is not None:
            self._on_rejected(rejection)

    def _backoff(self, attempt: int, retry_after: Optional[float]) -> None:
        # Full jitter: a random wait up to the exponential bound, never less than Retry-After.
        bound = min(self._backoff_cap, self._backoff_base * (2**attempt))
        time.sleep(max(random.uniform(0, bound), retry_after or 0.0))

    def _send(self, batch: List[Event]) -> None:
        pending = batch
        last_error = ""
        for attempt in range(self._max_retries + 1):
            if attempt:
                self.stats.retries += 1
            retry_after: Optional[float] = None
            try:
                response = self._http.post(self._endpoint, json=[event.to_json() for event in pending])
            except httpx.TransportError as error:
                last_error = f"cannot reach the edge: {error}"
                self._backoff(attempt, None)
                continue
            self.stats.http_version = response.http_version
            if response.status_code in (200, 207):
                pending = self._answered(pending, response.json())
                if not pending:
                    return
                last_error = "Kafka did not acknowledge the events"
            elif response.status_code in _RETRYABLE:
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                header = response.headers.get("retry-after")
                retry_after = float(header) if header and header.isdigit() else None
            else:
                error = _error_of(response)
                for event in pending:
                    self._reject(event, error[0], error[1])
                return
            self._backoff(attempt, retry_after)
        for event in pending:
            self._reject(event, "gave_up", f"after {self._max_retries} retries: {last_error}")

    def _answered(self, pending: List[Event], answer: Dict) -> List[Event]:
        """Counts the accepted, reports the refused, and returns what to send again."""
        again = []
        for result in answer.get("results", []):
            event = pending[result["index"]]
            if result["status"] == "accepted":
                self.stats.accepted += 1
            elif result.get("reason") == "not_acknowledged":
                again.append(event)
            else:
                self._reject(event, result.get("reason", "rejected"), result.get("detail", ""))
        return again


def _error_of(response: httpx.Response) -> tuple:
    try:
        error = response.json()["error"]
        return error.get("code", f"http_{response.status_code}"), error.get("message", "")
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}", response.text[:200]
