"""The retro-hunt work queue on NATS JetStream (scale-out mode): one message per task.

Stream ``VEDETTE_HUNTS`` has **work-queue retention**: a message stays until a worker
acknowledges it, then it is gone. A task goes to subject ``vedette.hunts.<job id>`` (so a
cancelled job's messages are purged by subject) with the body ``{"job": J, "task": T}``; the
state of the task is its row in PostgreSQL (:mod:`vedette.store.state.retrohunt_tasks`), the
message only says "run it". ``Nats-Msg-Id`` is ``hunt:<job>:<task>:<job created, µs>``, so
publishing a task again (an api that died between recording and publishing, then swept) is a
no-op within the duplicate window, and a database created afresh never collides with old ids.

Every worker process pulls through one shared durable consumer (``vedette-hunt-workers``):
explicit acknowledgement, ``ack_wait`` (30 s by default) renewed by in-progress heartbeats
while a long task runs, and ``max_deliver = max_attempts + 1``: a task whose workers died or
failed ``max_attempts`` times is delivered once more only to be recorded as failed with its
reason and acknowledged, so no task is left unfinished by JetStream giving up silently.

nats-py is asyncio: like :class:`~vedette.store.jetstream.JetStreamSpool`, the queue runs one
event loop in a private thread and the synchronous methods bridge to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
import orjson
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from vedette.errors import ConfigError, VedetteError
from vedette.store.jetstream import JetStreamConfig, _open_connection

__all__ = [
    "HuntMessage",
    "HuntQueue",
    "HuntQueueConfig",
    "HuntQueueUnavailable",
    "HuntSubscription",
    "TaskRef",
]

T = TypeVar("T")

_PUBLISH_CHUNK = 256


class HuntQueueUnavailable(VedetteError):
    """JetStream did not answer (the caller retries later)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HuntQueueConfig:
    """Where the work queue lives and how its consumer redelivers (see the module doc)."""

    connection: JetStreamConfig
    """The spool's NATS settings (servers, credentials, TLS, timeouts); its ``replicas`` are
    this stream's too."""
    stream: str = "VEDETTE_HUNTS"
    subject_prefix: str = "vedette.hunts"
    consumer: str = "vedette-hunt-workers"
    ack_wait: float = 30.0
    max_attempts: int = 4
    duplicate_window: float = 3600.0
    request_timeout: float = 10.0

    @classmethod
    def like(cls, spool: JetStreamConfig) -> HuntQueueConfig:
        """The work queue on the same NATS as the event spool, with the defaults above."""
        return cls(connection=spool)

    def subject(self, job_id: int) -> str:
        """The subject of one job's tasks."""
        return f"{self.subject_prefix}.{job_id}"


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A task to publish: its job, its id and when the job was made (for the message id)."""

    job_id: int
    task_id: int
    created: datetime


class HuntMessage:
    """One delivered task: ``job_id``, ``task_id`` and which delivery this is (from 1)."""

    def __init__(self, queue: HuntQueue, msg: Any, job_id: int, task_id: int) -> None:
        self._queue = queue
        self._msg = msg
        self.job_id = job_id
        self.task_id = task_id
        self.delivered = int(msg.metadata.num_delivered) if msg.metadata else 1

    def ack(self) -> None:
        """Done with it (the work queue drops it). Waits for the server's confirmation."""
        self._queue._call(self._msg.ack_sync(timeout=self._queue.config.request_timeout))

    def nak(self, delay: float | None = None) -> None:
        """Deliver it again (after ``delay`` seconds)."""
        self._queue._call(self._msg.nak(delay=delay))

    def in_progress(self) -> None:
        """Still working on it: restart the ack wait."""
        self._queue._call(self._msg.in_progress())


class HuntSubscription:
    """One pull subscription on the shared consumer (one per puller thread)."""

    def __init__(self, queue: HuntQueue, sub: Any) -> None:
        self._queue = queue
        self._sub = sub

    def fetch(self, timeout: float = 1.0) -> HuntMessage | None:
        """The next task, or None when none came within ``timeout``. A malformed message
        (not ours) is terminated and skipped."""
        try:
            msgs = self._queue._call(self._sub.fetch(1, timeout=timeout), timeout=timeout + 10)
        except (nats.errors.TimeoutError, TimeoutError):
            return None
        except (nats.errors.Error, OSError) as exc:
            raise HuntQueueUnavailable(f"work queue unavailable: {exc}") from exc
        for msg in msgs:
            try:
                body = orjson.loads(msg.data)
                return HuntMessage(self._queue, msg, int(body["job"]), int(body["task"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self._queue._call(msg.term())
        return None


class HuntQueue:
    """The work queue's stream and consumer; see the module docstring."""

    def __init__(self, config: HuntQueueConfig) -> None:
        if config.max_attempts < 1 or config.ack_wait <= 0:
            raise ConfigError("the hunt queue needs max_attempts >= 1 and ack_wait > 0")
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="huntqueue", daemon=True
        )
        self._thread.start()
        self._closed = False
        try:
            timeout = config.connection.connect_timeout + 30.0
            self._nc: Any = self._call(self._connect(), timeout=timeout)
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout if timeout is not None else self.config.request_timeout)
        except TimeoutError:
            future.cancel()
            raise

    async def _connect(self) -> Any:
        config = self.config
        # The spool's connection: the same servers, credentials and TLS, and the same clear
        # ConfigError when they are refused.
        nc = await _open_connection(config.connection)
        js = nc.jetstream(timeout=config.request_timeout)
        stream = StreamConfig(
            name=config.stream,
            subjects=[f"{config.subject_prefix}.*"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=config.connection.replicas,
            duplicate_window=config.duplicate_window,
        )
        try:
            try:
                await js.add_stream(stream)
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != 10058:  # exists with another configuration: make it this one
                    raise
                await js.update_stream(stream)
        except nats.js.errors.APIError as exc:
            await nc.close()
            raise ConfigError(f"stream {config.stream}: {exc.description}") from exc
        consumer = ConsumerConfig(
            durable_name=config.consumer,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=config.ack_wait,
            max_deliver=config.max_attempts + 1,
            filter_subject=f"{config.subject_prefix}.*",
        )
        await js.add_consumer(config.stream, consumer)
        return nc

    def _js(self) -> Any:
        return self._nc.jetstream(timeout=self.config.request_timeout)

    def publish(self, tasks: Sequence[TaskRef]) -> None:
        """Publish ``tasks``; returns once JetStream acknowledged every one. Raises
        :class:`HuntQueueUnavailable` (some may have been published: publishing again is
        idempotent)."""

        async def run(chunk: Sequence[TaskRef]) -> None:
            js = self._js()
            await asyncio.gather(
                *(
                    js.publish(
                        self.config.subject(t.job_id),
                        orjson.dumps({"job": t.job_id, "task": t.task_id}),
                        headers={"Nats-Msg-Id": _msg_id(t)},
                    )
                    for t in chunk
                )
            )

        try:
            for start in range(0, len(tasks), _PUBLISH_CHUNK):
                chunk = tasks[start : start + _PUBLISH_CHUNK]
                self._call(run(chunk), timeout=self.config.request_timeout * 3)
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise HuntQueueUnavailable(f"work queue unavailable: {exc}") from exc

    def purge_job(self, job_id: int) -> None:
        """Drop a job's messages not yet taken (a cancel; their rows are already skipped)."""
        try:
            self._call(
                self._js().purge_stream(self.config.stream, subject=self.config.subject(job_id))
            )
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise HuntQueueUnavailable(f"work queue unavailable: {exc}") from exc

    def subscribe(self) -> HuntSubscription:
        """A pull subscription on the shared consumer."""
        try:
            sub = self._call(
                self._js().pull_subscribe_bind(
                    durable=self.config.consumer, stream=self.config.stream
                )
            )
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise HuntQueueUnavailable(f"work queue unavailable: {exc}") from exc
        return HuntSubscription(self, sub)

    def pending(self) -> int:
        """Messages in the stream (tasks published and not yet acknowledged)."""
        try:
            info = self._call(self._js().stream_info(self.config.stream))
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise HuntQueueUnavailable(f"work queue unavailable: {exc}") from exc
        return int(info.state.messages)

    def close(self) -> None:
        """Close the connection and stop the loop thread.

        A close, not a drain: every ack and publish was already confirmed, and nats-py's drain
        of a pull subscription waits on a queue its fetches never mark done, so it sat out its
        whole timeout (10 s of every worker's stop) and left tasks that printed tracebacks."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # closing anyway
            self._call(self._nc.close(), timeout=10.0)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10.0)


def _msg_id(task: TaskRef) -> str:
    stamp = int(task.created.timestamp() * 1_000_000)
    return f"hunt:{task.job_id}:{task.task_id}:{stamp}"
