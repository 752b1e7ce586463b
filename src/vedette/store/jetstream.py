"""The spool on NATS JetStream, for the scale-out mode (api and worker roles on many machines).

One stream (``VEDETTE_EVENTS``) holds every acknowledged batch; a batch goes to subject
``vedette.events.p<N>`` where ``N = crc32(unit) % partitions``, so all of a unit's events are in
one partition and its correlation state stays in one worker. The message body is exactly a
:class:`~vedette.store.spool.SqliteSpool` row's blob (:mod:`vedette.store.batchcodec`: records
joined by newlines, zlib, CRC-32 of the uncompressed bytes); unit, kind, receive time, count and
CRC travel in headers. A batch's spool sequence number is its stream sequence: increasing within
a partition, with gaps (the other partitions' messages), which the worker does not mind.

Durability. :meth:`JetStreamSpool.append` returns only after JetStream's publish acknowledgement
(PubAck). A PubAck means the message is in the stream's file store; it is on disk only if the
server runs with ``sync_interval: always`` (by default JetStream fsyncs every two minutes, and
an acknowledged write can be lost on power loss, nats-server issue 7564), or, with the default
sync, if the stream is replicated (``replicas=3``: the PubAck waits for a quorum of two servers,
which then both lose power only together). One server with ``sync_interval: always`` pays an
fsync per publish; R3 pays a network round trip to a quorum and survives losing a server.

Idempotency. ``Nats-Msg-Id`` is ``<unit>:<key>`` (both percent-quoted): a retry within the
stream's duplicate window (one hour here) gets the first PubAck back with ``duplicate`` set.
Past the window, the optional :class:`IngestLedger` (the state store's ``ingest_ledger`` table in
PostgreSQL) is looked up before publishing and written after the PubAck, before the caller
answers 202. Left open: the api process dying between the PubAck and the ledger write *and* the
client's retry coming after the duplicate window stores that batch twice.

Reading. A worker reads one partition through :meth:`JetStreamSpool.partition`: ``read(after)``
asks for the next message of the partition's subject at or after ``after + 1`` (JetStream's
direct get with ``next_by_subj``), so it is stateless and a worker can resume from its committed
position on any machine. ``release(upto)`` purges the partition's messages up to ``upto`` (the
position committed in PostgreSQL with the alerts and stored counters): the stream keeps what is
not yet processed, whatever happened to the workers.

nats-py is asyncio and the spool interface is synchronous and called from many threads: the
spool runs one event loop in a private thread and bridges with
:func:`asyncio.run_coroutine_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, unquote

import nats
import nats.errors
import nats.js.errors
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from vedette.errors import ConfigError
from vedette.store.batchcodec import decode_batch, encode_batch
from vedette.store.natsauth import NatsAuth, redact_url
from vedette.store.spool import AppendResult, SpoolBatch, SpoolFull, SpoolUnavailable

__all__ = [
    "IngestLedger",
    "JetStreamConfig",
    "JetStreamSpool",
    "PartitionSpool",
    "partition_of",
]

T = TypeVar("T")
log = logging.getLogger("vedette.jetstream")

_H_UNIT = "Vedette-Unit"
_H_KIND = "Vedette-Kind"
_H_AT = "Vedette-Received-At"
_H_COUNT = "Vedette-Count"
_H_CRC = "Vedette-Crc"
_META_PARTITIONS = "vedette_partitions"
# JetStream error codes meaning "the stream is full" (limits with discard=new): back-pressure.
_FULL_CODES = {10047, 10077, 10078}
_STATE_TTL_S = 0.5
_WAIT_POLL_S = 0.05


async def _open_connection(config: JetStreamConfig) -> Any:
    """Connect (reconnecting for ever afterwards), or raise ConfigError with the reason.

    nats-py retries a first connection for ever when reconnecting is on; a wrong password or
    certificate would then hang the process silently. Its errors are watched instead: once
    every server refused for such a reason, or ``connect_timeout`` passed, give up and say why.
    """
    servers = [u.strip() for u in config.url.split(",") if u.strip()]
    seen: list[BaseException] = []
    connected = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        if connected.is_set():
            log.warning("NATS: %s: %s", type(exc).__name__, exc)
        elif len(seen) < 100:
            seen.append(exc)

    task = asyncio.ensure_future(
        nats.connect(
            servers,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=5,
            name="vedette",
            error_cb=on_error,
            **config.auth.options(),
        )
    )
    deadline = time.monotonic() + config.connect_timeout
    while not task.done():
        refused = [e for e in seen if _refusal(e)]
        if len(refused) >= len(servers) or time.monotonic() > deadline:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            errors = refused or seen
            reason = _reason(errors[-1]) if errors else "no answer"
            raise ConfigError(f"cannot connect to NATS at {redact_url(config.url)}: {reason}")
        await asyncio.sleep(0.05)
    try:
        nc = task.result()
    except Exception as exc:
        raise ConfigError(
            f"cannot connect to NATS at {redact_url(config.url)}: {_reason(exc)}"
        ) from exc
    connected.set()
    return nc


def _refusal(exc: BaseException) -> bool:
    """An error that retrying will not cure: credentials or certificates."""
    if isinstance(exc, nats.errors.AuthorizationError | ssl.SSLError):
        return True
    return "authorization" in str(exc).lower() or "tls" in str(exc).lower()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, nats.errors.AuthorizationError):
        return "authorization refused (check the credentials)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message} (check --nats-tls-ca)"
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def partition_of(unit: str, partitions: int) -> int:
    """The partition of a unit: stable across processes, machines and Python versions."""
    return zlib.crc32(unit.encode("utf-8")) % partitions


class IngestLedger(Protocol):
    """Idempotency keys kept past JetStream's duplicate window (the state store's ledger)."""

    def lookup(self, unit: str, key: str) -> tuple[int, int] | None:
        """``(seq, count)`` acknowledged under the key, or None."""
        ...

    def record(self, unit: str, key: str, seq: int, count: int) -> None:
        """Remember a key after its batch was acknowledged by JetStream."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class JetStreamConfig:
    """Where the stream lives and how it is made (see the module docstring for the trade-off)."""

    url: str
    stream: str = "VEDETTE_EVENTS"
    subject_prefix: str = "vedette.events"
    partitions: int = 8
    replicas: int = 1
    duplicate_window: float = 3600.0
    max_bytes: int = -1
    """Stream size limit; past it publishes are refused (503 to the client), nothing dropped."""
    request_timeout: float = 10.0
    connect_timeout: float = 20.0
    """How long the first connection may take before the process gives up (ConfigError)."""
    auth: NatsAuth = field(default_factory=NatsAuth)
    """Credentials and TLS (vedette.store.natsauth)."""

    def subject(self, partition: int) -> str:
        """The subject of one partition."""
        return f"{self.subject_prefix}.p{partition}"


class JetStreamSpool:
    """The spool on a JetStream stream; see the module docstring."""

    def __init__(
        self,
        config: JetStreamConfig,
        *,
        high_water_events: int = 2_000_000,
        ledger: IngestLedger | None = None,
        received: Callable[[], dict[str, tuple[int, float]]] | None = None,
    ) -> None:
        if config.partitions < 1:
            raise ConfigError("--partitions must be at least 1")
        self.config = config
        self.high_water_events = high_water_events
        self.ledger = ledger
        self._received = received
        self.corrupt_batches = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="jetstream", daemon=True
        )
        self._thread.start()
        self._state_lock = threading.Lock()
        self._state_at = 0.0
        self._messages = 0
        self._by_subject: dict[str, int] = {}
        self._last_seq = 0
        # Mean events per batch appended by this process: turns pending batches into events.
        self._appended_events = 0
        self._appended_batches = 0
        self._closed = False
        self.replicas = config.replicas
        """Replicas the stream keeps (checked against ``config.replicas`` on connect)."""
        try:
            self._nc: Any = self._call(self._connect(), timeout=config.connect_timeout + 30.0)
        except BaseException:
            self._stop_loop()
            raise

    # -- bridge ------------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout if timeout is not None else self.config.request_timeout)
        except TimeoutError:
            future.cancel()
            raise

    async def _connect(self) -> Any:
        config = self.config
        nc = await _open_connection(config)
        js = nc.jetstream(timeout=config.request_timeout)
        stream = StreamConfig(
            name=config.stream,
            subjects=[f"{config.subject_prefix}.*"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=config.replicas,
            duplicate_window=config.duplicate_window,
            max_bytes=config.max_bytes,
            discard=DiscardPolicy.NEW,
            allow_direct=True,
            metadata={_META_PARTITIONS: str(config.partitions)},
        )
        try:
            try:
                await js.add_stream(stream)
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != 10058:  # 10058: exists with another configuration
                    raise
                info = await js.stream_info(config.stream)
                had = (info.config.metadata or {}).get(_META_PARTITIONS)
                if had is not None and had != str(config.partitions):
                    raise ConfigError(
                        f"stream {config.stream} has {had} partitions, not "
                        f"{config.partitions}: every api and worker must use the same "
                        "--partitions"
                    ) from exc
                await js.update_stream(stream)
            info = await js.stream_info(config.stream)
        except nats.js.errors.APIError as exc:
            await nc.close()
            if config.replicas > 1:
                raise ConfigError(
                    f"NATS cannot keep {config.replicas} replicas of stream {config.stream} "
                    f"({exc.description}, error {exc.err_code}): --replicas needs a JetStream "
                    f"cluster of at least {config.replicas} servers"
                ) from exc
            raise ConfigError(f"stream {config.stream}: {exc.description}") from exc
        except (nats.errors.TimeoutError, TimeoutError) as exc:
            await nc.close()
            raise ConfigError(
                f"JetStream did not answer for stream {config.stream} within "
                f"{config.request_timeout:g} s (JetStream off, or a cluster without a leader yet)"
            ) from exc
        except BaseException:
            await nc.close()
            raise
        self.replicas = int(info.config.num_replicas or 1)
        if self.replicas != config.replicas:
            await nc.close()
            raise ConfigError(
                f"stream {config.stream} keeps {self.replicas} replicas, not {config.replicas}"
            )
        return nc

    def _js(self) -> Any:
        return self._nc.jetstream(timeout=self.config.request_timeout)

    # -- ingest ------------------------------------------------------------------------------

    def partition(self, number: int) -> PartitionSpool:
        """The worker's view of one partition."""
        if not 0 <= number < self.config.partitions:
            raise ValueError(f"partition {number} out of range 0..{self.config.partitions - 1}")
        return PartitionSpool(self, number)

    def append(
        self,
        unit: str,
        kind: str,
        records: Sequence[bytes],
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Publish one batch; returns after the PubAck. Raises SpoolFull, SpoolUnavailable."""
        encoded = encode_batch(records)
        if self._closed:
            raise SpoolUnavailable("spool unavailable: closed")
        if idempotency_key is not None and self.ledger is not None:
            found = self.ledger.lookup(unit, idempotency_key)
            if found is not None:
                return AppendResult(found[0], found[1], True)
        pending = self.pending_events()
        if pending >= self.high_water_events:
            raise SpoolFull(pending, self.high_water_events, 5.0)
        headers = {
            _H_UNIT: quote(unit, safe=""),
            _H_KIND: quote(kind, safe=""),
            _H_AT: repr(time.time()),
            _H_COUNT: str(encoded.count),
            _H_CRC: str(encoded.crc),
        }
        if idempotency_key is not None:
            headers["Nats-Msg-Id"] = f"{quote(unit, safe='')}:{quote(idempotency_key, safe='')}"
        subject = self.config.subject(partition_of(unit, self.config.partitions))
        try:
            ack = self._call(self._js().publish(subject, encoded.blob, headers=headers))
        except nats.js.errors.APIError as exc:
            if exc.err_code in _FULL_CODES:
                raise SpoolFull(pending, self.high_water_events, 5.0) from exc
            raise SpoolUnavailable(f"spool unavailable: JetStream: {exc}") from exc
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise SpoolUnavailable(
                f"spool unavailable: JetStream: {type(exc).__name__}: {exc}"
            ) from exc
        if idempotency_key is not None and self.ledger is not None:
            self.ledger.record(unit, idempotency_key, int(ack.seq), encoded.count)
        if not ack.duplicate:
            self._appended_events += encoded.count
            self._appended_batches += 1
        return AppendResult(int(ack.seq), encoded.count, bool(ack.duplicate))

    def received_counts(self) -> dict[str, tuple[int, float]]:
        """Events received per unit, as the workers committed them (the state store)."""
        return self._received() if self._received is not None else {}

    # -- state of the stream -----------------------------------------------------------------

    def _refresh(self) -> None:
        with self._state_lock:
            if time.monotonic() - self._state_at < _STATE_TTL_S:
                return
            try:
                info = self._call(
                    self._js().stream_info(
                        self.config.stream, subjects_filter=f"{self.config.subject_prefix}.*"
                    )
                )
            except (nats.errors.Error, TimeoutError, OSError):
                return  # keep the last known figures; ingest reports the outage itself
            self._messages = int(info.state.messages)
            self._by_subject = dict(info.state.subjects or {})
            self._last_seq = int(info.state.last_seq)
            self._state_at = time.monotonic()

    def _mean_batch(self) -> float:
        if not self._appended_batches:
            return 1.0
        return self._appended_events / self._appended_batches

    def pending_events(self) -> int:
        """An estimate: batches in the stream times this process's mean batch size."""
        self._refresh()
        return int(self._messages * self._mean_batch())

    def pending_batches(self) -> int:
        """Batches in the stream (acknowledged, not yet released by their worker)."""
        self._refresh()
        return self._messages

    def last_seq(self) -> int:
        """The stream's last sequence number."""
        self._refresh()
        return self._last_seq

    def read(self, after_seq: int, limit: int = 64) -> list[SpoolBatch]:
        """Not meaningful across partitions: workers read through :meth:`partition`."""
        raise NotImplementedError("read a partition: JetStreamSpool.partition(n).read(...)")

    def wait(self, after_seq: int, timeout: float) -> bool:
        """Not meaningful across partitions: workers wait through :meth:`partition`."""
        raise NotImplementedError("wait on a partition: JetStreamSpool.partition(n).wait(...)")

    def release(self, upto_seq: int) -> None:
        """Not meaningful across partitions: workers release through :meth:`partition`."""
        raise NotImplementedError("release a partition: JetStreamSpool.partition(n).release(...)")

    def close(self) -> None:
        """Drain the connection and stop the loop thread."""
        if self._closed:
            return
        self._closed = True
        # Closing anyway; nothing unacknowledged depends on the drain.
        with contextlib.suppress(Exception):
            self._call(self._nc.drain(), timeout=10.0)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10.0)

    # -- partition access (used by PartitionSpool) -------------------------------------------

    def _read(self, partition: int, after_seq: int, limit: int) -> list[SpoolBatch]:
        async def fetch() -> list[Any]:
            js = self._js()
            out: list[Any] = []
            seq = after_seq + 1
            subject = self.config.subject(partition)
            while len(out) < limit:
                try:
                    msg = await js.get_msg(
                        self.config.stream, seq=seq, subject=subject, next=True, direct=True
                    )
                except nats.js.errors.NotFoundError:
                    break
                out.append(msg)
                seq = int(msg.seq) + 1
            return out

        try:
            messages = self._call(fetch())
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise SpoolUnavailable(
                f"spool unavailable: JetStream: {type(exc).__name__}: {exc}"
            ) from exc
        return [self._decode(m) for m in messages]

    def _decode(self, msg: Any) -> SpoolBatch:
        seq = int(msg.seq)
        headers = msg.headers or {}
        try:
            unit = unquote(headers[_H_UNIT])
            kind = unquote(headers[_H_KIND])
            at = float(headers[_H_AT])
            count = int(headers[_H_COUNT])
            crc = int(headers[_H_CRC])
        except (KeyError, ValueError) as exc:
            self.corrupt_batches += 1
            return SpoolBatch(seq, headers.get(_H_UNIT, ""), "", 0.0, [], corrupt=f"header {exc}")
        found = decode_batch(bytes(msg.data or b""), crc, count)
        if isinstance(found, str):
            self.corrupt_batches += 1
            return SpoolBatch(seq, unit, kind, at, [], corrupt=found)
        return SpoolBatch(seq, unit, kind, at, found)

    def _has_after(self, partition: int, after_seq: int) -> bool:
        try:
            self._call(
                self._js().get_msg(
                    self.config.stream,
                    seq=after_seq + 1,
                    subject=self.config.subject(partition),
                    next=True,
                    direct=True,
                )
            )
        except nats.js.errors.NotFoundError:
            return False
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise SpoolUnavailable(f"spool unavailable: JetStream: {exc}") from exc
        return True

    def _purge(self, partition: int, upto_seq: int) -> None:
        try:
            self._call(
                self._js().purge_stream(
                    self.config.stream, subject=self.config.subject(partition), seq=upto_seq + 1
                )
            )
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise SpoolUnavailable(f"spool unavailable: JetStream: {exc}") from exc
        self._state_at = 0.0

    def _pending_in(self, partition: int) -> int:
        self._refresh()
        return self._by_subject.get(self.config.subject(partition), 0)


class PartitionSpool:
    """One partition of a :class:`JetStreamSpool`, with the interface the worker reads."""

    def __init__(self, spool: JetStreamSpool, number: int) -> None:
        self.spool = spool
        self.number = number

    def append(
        self,
        unit: str,
        kind: str,
        records: Sequence[bytes],
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Publish through the parent (the unit decides the partition, not this view)."""
        return self.spool.append(unit, kind, records, idempotency_key=idempotency_key)

    def received_counts(self) -> dict[str, tuple[int, float]]:
        """The parent's figures."""
        return self.spool.received_counts()

    def read(self, after_seq: int, limit: int = 64) -> list[SpoolBatch]:
        """Up to ``limit`` batches of this partition with seq > ``after_seq``, in order."""
        return self.spool._read(self.number, after_seq, limit)

    def wait(self, after_seq: int, timeout: float) -> bool:
        """Poll until this partition has a batch past ``after_seq``; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self.spool._has_after(self.number, after_seq):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(_WAIT_POLL_S, left))

    def release(self, upto_seq: int) -> None:
        """Purge this partition's messages with seq <= ``upto_seq``."""
        self.spool._purge(self.number, upto_seq)

    def pending_events(self) -> int:
        """Batches pending in this partition (the worker's view counts batches)."""
        return self.spool._pending_in(self.number)

    def pending_batches(self) -> int:
        """Batches pending in this partition."""
        return self.spool._pending_in(self.number)

    def last_seq(self) -> int:
        """The stream's last sequence number."""
        return self.spool.last_seq()

    def close(self) -> None:
        """Nothing: the parent owns the connection."""
