"""Kafka input handed over a fetch at a time instead of a message at a time.

Faust's consumer passes every fetched message on its own through its conductor, a channel queue
and a stream iterator, with a task and several sensor calls per message: measured here, that
path alone costs a plain agent ~270 µs per event. The consumer below keeps everything else of
Faust's (group membership, partition assignment, table recovery, offset tracking and commits,
flow control during rebalances) and replaces only the loop that drains fetched records: records
of the *routed* topics are collected and handed to their handler as one list per fetch (at most
``batch_size`` at a time; topics routed to one handler share its batches); records of other
topics (Faust's own) take Faust's usual path.

With a batch window (``batch_window_s`` > 0, as ``stream.take(n, within=...)``), fetches are
taken at most once per window: while a light load's records trickle in, the consumer waits for
the rest of the window before taking the next fetch, so records gather into fewer, larger
batches (less CPU per event) for up to the window's latency; a load that keeps the worker busy
longer than the window never waits. The records gather in the client's fetch buffer, not in
batches held back: holding read messages would stall a rebalance, which waits for every read
message to be acknowledged while the consumer thread, busy with the rebalance, answers no fetch.

A routed message counts as in flight from when it is read until its batch is done, and is
acknowledged then: Faust commits only acknowledged offsets and waits for in-flight messages
before giving partitions away in a rebalance. A handler may return a future: the batch is done
when it completes, and the next batch is handed over meanwhile. If a handler (or its future)
fails, the worker stops without acknowledging the batch: its messages are delivered again
(at-least-once).

Usage (before the worker starts)::

    use_batch_consumer(app, {"orders": handle_orders}, batch_size=500, batch_window_s=0.02)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Mapping, Sequence
from typing import Any, ClassVar, cast

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.exceptions import ConsumerNotStarted
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP, Message

#: Takes a batch; returns None when done with it, or a future that completes when it is.
BatchHandler = Callable[[Sequence[Message]], Awaitable["asyncio.Future[Any] | None"]]

#: How long the broker may hold a fetch that finds no new records (Faust fixes 1,500 ms; the
#: embedded broker holds an empty fetch that long even when records arrive meanwhile, which
#: would delay a decision by up to 1.5 s on a quiet stream).
FETCH_MAX_WAIT_MS = 20
#: Longest the Kafka client's fetch routine sleeps before it looks again for partitions to fetch
#: (aiokafka's ``consumer_timeout_ms``; see :class:`ConsumerThread`): no longer than the broker
#: may hold a fetch anyway.
FETCHER_WAKE_S = FETCH_MAX_WAIT_MS / 1000
#: Batches' worth of fetched records the consumer takes from the Kafka client at a time (Faust's
#: ``broker_max_poll_records``; by default it takes all the client holds). In a backlog the client
#: holds a fetch of every input partition, and taking them all at once turned up to ~130,000
#: records into objects together (~40 MB in tracemalloc, 300k-event bench with 100,000
#: customers), kept until the last of them was in a batch: the worker's peak RSS was 269-303 MB
#: in nine such runs (4 Dec 15:28-16:50); taking 4 batches at a time (and fetching meanwhile,
#: see :class:`ConsumerThread`), 259-269 MB in five.
POLL_BATCHES = 4


async def seek_to_committed_or_reset(consumer: AIOKafkaConsumer, reset: str,
                                     leave: Container[str] = ()) -> dict[TopicPartition, int | None]:
    """aiokafka's ``seek_to_committed``, which leaves a partition without a committed offset
    (or at 0) where the client has read to, also for those partitions: to their first record,
    or to their end if ``reset`` (the ``auto_offset_reset``) is ``"latest"`` — except for the
    partitions of the topics in ``leave`` (Faust's changelogs: its recovery seeks those itself).
    Returns the committed offsets.

    Faust seeks back to the committed offsets when a rebalance's recovery ends; with aiokafka's
    seek, records of a partition nobody had committed on yet that the client had read past were
    never read again (in the reliability test, 4 Dec: the first 114 ledger records of a
    partition fetched during a rebalance, dropped, and committed past).
    """
    committed = await consumer.seek_to_committed()
    start: list[TopicPartition] = []
    end: list[TopicPartition] = []
    for tp, offset in committed.items():
        if tp.topic not in leave and (offset is None or offset <= 0):
            (end if offset != 0 and reset == "latest" else start).append(tp)
    if start:
        await consumer.seek_to_beginning(*start)
    if end:
        await consumer.seek_to_end(*end)
    return committed


def override(obj: object, name: str, value: object) -> None:
    """Set ``obj``'s attribute ``name``, which its library keeps private and offers no setting
    for, to ``value``; raise if ``obj`` has no such attribute: a library version that renamed it
    would otherwise leave the setting silently undone.

    >>> class Client:
    ...     _timeout = 0.2
    >>> client = Client()
    >>> override(client, "_timeout", 0.02)
    >>> client._timeout
    0.02
    >>> override(client, "_timout", 0.02)
    Traceback (most recent call last):
    AttributeError: Client has no attribute '_timout' to override (renamed in this version of its library?)
    """
    if not hasattr(obj, name):
        raise AttributeError(f"{type(obj).__name__} has no attribute {name!r} to override "
                             "(renamed in this version of its library?)")
    setattr(obj, name, value)


class ConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread with a short fetch wait (:data:`FETCH_MAX_WAIT_MS`), fetching the
    partitions whose records have been taken while others' still wait to be taken, and never
    idle for long with partitions to fetch (:data:`FETCHER_WAKE_S`).

    aiokafka's client sends no fetch to a broker while any partition it leads has fetched
    records not taken yet, for up to 100 ms after they came (its ``prefetch_backoff``, not a
    setting). A worker takes at most a few batches' records per poll (:data:`POLL_BATCHES`), so
    in a backlog some usually wait: with one broker, every partition's next records then waited
    too. Measured (``bench --events 300000 --customers 100000 --rate
    2200``, 4 Dec 16:30-16:50, alternating with a worker taking everything per poll): with that
    backoff, p99 747 ms against 236; without it, 481 and 461 ms against 1,122 and 1,160 (this VM's
    speed moved a lot in that hour). A partition's next fetch still waits until its records are
    all taken, which bounds what the client holds to one fetch per partition.

    aiokafka's fetch routine can also miss its wake-up. When a fetch to a broker completes just
    as records are taken, the routine may look for partitions to fetch before the completed
    fetch's callback has marked the broker free: it sends nothing and sleeps until its timeout
    (``consumer_timeout_ms``, 200 ms by default), while new records wait on the broker. Seen at a
    steady load (``bench --events 100000`` on ee04fd4, 5 Dec 01:23): twice in the 20 s, no fetch
    for 201 ms; about 2 % of the orders then waited up to 200 ms more, enough to set the p99 (254
    ms; by 5 s slices 83, 273, 157, 349, 51 ms). The routine now looks again every
    :data:`FETCHER_WAKE_S`; alternating runs of that command (5 Dec 01:15-01:21): p99 93, 114 and
    139 ms against 106, 293 and 242 ms.
    """

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # both read by start(); Faust offers no setting for them
        override(consumer, "_fetch_max_wait_ms", FETCH_MAX_WAIT_MS)
        override(consumer, "_consumer_timeout", FETCHER_WAKE_S)
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        override(self._ensure_consumer()._fetcher, "_prefetch_backoff", 0.0)  # read for each fetch's records

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Faust's, with partitions nobody has committed on sought too (see
        :func:`seek_to_committed_or_reset`)."""
        return cast(Mapping[TP, int], await self.call_thread(
            seek_to_committed_or_reset, self._ensure_consumer(), self.app.conf.consumer_auto_offset_reset,
            self.app.tables.changelog_topics))


class BatchConsumer(Consumer):
    """Faust's aiokafka consumer, handing routed topics' messages over in batches."""

    routes: ClassVar[Mapping[str, BatchHandler]] = {}
    batch_size: ClassVar[int] = 500
    #: Shortest time from one fetch taken to the next (0: no wait).
    batch_window_s: ClassVar[float] = 0.0
    #: Why a batch handed over earlier failed (raised in the drain loop).
    _batch_failure: BaseException | None = None
    #: Between a rebalance's revocation and its assignment (see :meth:`resume_flow`).
    _awaiting_assignment: bool = False

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self._awaiting_assignment = True
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self._awaiting_assignment = False
        await super().on_partitions_assigned(assigned, generation_id)

    def resume_flow(self) -> None:
        """Faust's, except between a rebalance's revocation and its assignment.

        Faust's table recovery resumes the flow when it completes, also when a rebalance revoked
        the partitions it recovered meanwhile (its generation check only sees the assignment
        that follows). The worker then took records of partitions the group was handing to
        another worker, after it had waited for its batches in flight: decisions and state
        writes racing the next owner's. Seen in the reliability test's worker logs: "Revoking
        previously assigned partitions", then "Recovery complete" and "Worker ready" 150 ms
        later, two seconds before the worker joined the next generation."""
        if self._awaiting_assignment:
            self.log.info("Not resuming the flow: partitions revoked, waiting for the next assignment")
        else:
            super().resume_flow()

    async def perform_seek(self) -> None:
        """Faust's (every assigned partition back to its committed offset), also forgetting the
        acknowledgements above it: those records are read again, and an acknowledgement kept
        from before could be committed while records before it wait to be read again."""
        await super().perform_seek()
        for tp in self.assignment():
            self._acked.pop(tp, None)
            self._acked_index.pop(tp, None)
            self._gap.pop(tp, None)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's (the records of the next fetches, round-robin over the partitions), except
        that the records it would drop are read again: their partitions are sought back to the
        first of them.

        Faust drops the records of a partition that is no longer active when they are handed
        on (paused since, or revoked), and all of them when the flow stopped or the generation
        changed meanwhile, with the Kafka client already past them. It asks the client for the
        records of its active partitions as one set, which it keeps changing: emptied by a
        pause while the client waits for records, the set asks for every partition's (the
        client's reading of an empty set). Seen in the reliability test (5 Dec): the 2,000
        orders of one fetch dropped that way as a recovery ended, the worker deciding on from
        the next fetch, and a worker that took over deciding those orders later, on a state
        that held the orders after them. Faust seeks every partition back to its committed
        offset only when the flow had stopped before the records were handed on; that seek
        waited for the committed offsets while the group moved on, and failed half done
        ("No current assignment")."""
        records, active = await self._wait_next_records(timeout)
        generation = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        dropped: dict[TP, int] = {}  # partition -> offset of the first record not handed on
        to_message, buffered = self._to_message, self._buffered_partitions
        for tp, record in self.scheduler.iterate(records):
            if tp in dropped:
                continue
            if self.flow_active and generation == self.app.consumer_generation_id and (
                    active is None or tp in active or tp in buffered):
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)
            else:
                dropped[tp] = record.offset
        if dropped:
            await self._read_again(dropped)

    async def _read_again(self, first: Mapping[TP, int]) -> None:
        """Seek each partition still assigned back to the offset ``first`` gives it."""
        assigned = self.assignment()
        for tp, offset in first.items():
            if tp not in assigned:
                continue  # revoked: its next owner reads it from the committed offset
            try:
                await self.seek_wait({tp: offset})
            except Exception as exc:  # the group moved on meanwhile: the next assignment seeks it
                self.log.warning("could not seek %s back to %d to read it again: %r", tp, offset, exc)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in the worker
        """Faust's drain loop (``faust.transport.consumer.Consumer._drain_messages``) with routed
        topics collected per fetch."""
        routes, batch_size, window = self.routes, self.batch_size, self.batch_window_s
        fetched_at = 0.0
        callback = self.callback
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = cast(Any, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        in_flight = self._unacked_messages.add
        batches: dict[BatchHandler, list[Message]] = {}
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                if self._batch_failure is not None:
                    raise self._batch_failure
                self.diag.set_flag(CONSUMER_FETCHING)
                await self.sleep(0)
                if window:  # the rest of the window since the last fetch was taken
                    if (rest := fetched_at + window - time.monotonic()) > 0:
                        await self.sleep(rest)
                    fetched_at = time.monotonic()
                if not self.should_stop:
                    async for tp, message in self.getmany(timeout=1.0):
                        offset = message.offset
                        read = get_read_offset(tp)
                        handler = routes.get(message.topic)
                        if read is not None and offset < read:
                            if handler is None:
                                continue  # read before (Faust drops these too)
                            # read again after a seek back: processed again (a duplicate changes
                            # nothing), as it may not have been processed before
                        elif read and offset - read > 1 and acks_enabled_for(message.topic):
                            await self._add_gap(tp, read + 1, offset)
                        if self._commit_every is not None and self._n_acked >= self._commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if handler is not None:
                            in_flight(message)
                            batch = batches.setdefault(handler, [])
                            batch.append(message)
                            if len(batch) >= batch_size:
                                await self._hand_over(handler, batches.pop(handler))
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    for handler in list(batches):
                        await self._hand_over(handler, batches.pop(handler))
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _hand_over(self, handler: BatchHandler, batch: list[Message]) -> None:
        done = await handler(batch)
        if done is None:
            self._acknowledge(batch)
        else:
            done.add_done_callback(lambda future: self._batch_done(batch, future))

    def input_lag(self) -> int | None:
        """Messages on the assigned partitions of routed topics not read yet (as far as the last
        fetch told the broker's end offsets); None while the worker has none of those partitions
        (before the consumer has started, before it has joined the group, or in a group with more
        workers than partitions)."""
        try:
            routed = [tp for tp in self.assignment() if tp.topic in self.routes]
        except ConsumerNotStarted:
            return None
        if not routed:
            return None
        lag = 0
        for tp in routed:
            if (end := self.highwater(tp)) is not None:
                read = self._read_offset.get(tp)
                position = read + 1 if read is not None else (self._committed_offset.get(tp) or 0)
                lag += max(0, end - position)
        return lag

    def describe_fetching(self) -> str:
        """Where fetching stands, for the log when the worker stalls: the flow, the messages in
        flight and, for each assigned partition of the routed topics, Faust's view (active or
        paused, read and committed offsets) beside the Kafka client's (paused, position,
        fetched records not taken yet)."""
        client = self._thread._consumer if self._thread is not None else None
        assignment = client._subscription.subscription.assignment if client and client._subscription.subscription \
            else None
        fetcher = getattr(client, "_fetcher", None)
        buffered = getattr(fetcher, "_records", {})
        lines = [f"flow active {self.flow_active}, awaiting assignment {self._awaiting_assignment}, "
                 f"{len(self._unacked_messages)} messages in flight, fetches in flight to nodes "
                 f"{sorted(getattr(fetcher, '_in_flight', ()))}"]
        try:
            tps = sorted(tp for tp in self.assignment() if tp.topic in self.routes)
        except ConsumerNotStarted:
            tps = []
        active = self._active_partitions or set()
        for tp in tps:
            state = assignment.state_value(tp) if assignment is not None and tp in assignment.tps else None
            client_view = "not assigned in the client" if state is None else (
                f"client paused {state.paused}, position {state.position if state.has_valid_position else None}, "
                f"fetched not taken {tp in buffered}")
            lines.append(f"{tp.topic}[{tp.partition}]: active {tp in active}, paused {tp in self._paused_partitions}, "
                         f"read {self._read_offset.get(tp)}, committed {self._committed_offset.get(tp)}, "
                         f"highwater {self.highwater(tp)}; {client_view}")
        return "\n".join(lines)

    def _batch_done(self, batch: list[Message], future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._acknowledge(batch)
        elif self._batch_failure is None:
            self._batch_failure = asyncio.CancelledError() if future.cancelled() else future.exception()

    def _acknowledge(self, batch: list[Message]) -> None:
        ack = self.ack
        for message in batch:
            ack(message)


def use_batch_consumer(app: faust.App, routes: Mapping[str, BatchHandler], batch_size: int,
                       batch_window_s: float = 0.0) -> None:
    """Make ``app`` consume the topics in ``routes`` (full names) in batches of up to
    ``batch_size``, each handed to its handler, taking a fetch at most every ``batch_window_s``
    and at most :data:`POLL_BATCHES` batches' records from the client at a time; the topics are
    subscribed like an agent's."""
    app.conf.broker_max_poll_records = POLL_BATCHES * batch_size
    consumer_class = type("SalesguardBatchConsumer", (BatchConsumer,),
                          {"routes": dict(routes), "batch_size": batch_size, "batch_window_s": batch_window_s})
    cast(Any, app.transport).Consumer = consumer_class
    for name in routes:
        app.topics.add(app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                                 value_serializer="raw"))
