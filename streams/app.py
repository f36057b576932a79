"""The worker's Faust app: input topics, the customer-state table, timers and web pages.

The input topics (``customers``, ``orders``, ``ledger``, ``risk-commands``) and the state table
are co-partitioned by customer id, so one worker owns all of a customer's events and state.
They are consumed a fetch at a time (:mod:`streams.batch_consumer`): per batch the worker runs
:class:`~streams.pipeline.Pipeline` and hands decisions, holds and dead letters to the producer;
once the broker has them, each changed customer is written once, then the Redis mirror and
audit entries are staged for a background task (:mod:`streams.write_behind`). The next batch
is processed while a batch is being written (see ``SalesguardApp.begin``). Offsets are acked
after the batch is written (at-least-once); state changes are idempotent per event, so a
redelivered batch changes nothing twice. Training examples go to the ``model-examples`` topic;
with ``SALESGUARD_TRAINING=in-worker`` the worker's trainer task learns those of the partitions
it owns (a trainer per kind of example, see :mod:`streams.training`), otherwise the trainer
process does (:mod:`streams.trainer_app`). Either way the worker scores with the newest saved
model versions.

Kafka orders events within a topic-partition only: a payment may be processed before the
order it pays for was, when the ``ledger`` topic runs ahead of ``orders``. Decisions use the
state known when the order is processed, as a live system must.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import faust
from faust.types import Message
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from detectors.risk_models import ModelSnapshotError, RiskModels
from monitoring import metrics
from monitoring.batch_metrics import count_batch
from monitoring.desk import DeskBackend, desk_app, mount
from monitoring.portfolio import PortfolioTally
from monitoring.portfolio import publish as publish_portfolio
from rules import CompiledRulebook, Outcome, load_rulebook
from streams import rulebook_control
from streams.audit import AuditTrail, decision_record, desk_record
from streams.batch_consumer import BatchConsumer, BatchHandler, use_batch_consumer
from streams.contracts import InputEvent, dumps
from streams.contracts.learning import EXAMPLE_KINDS, example_records
from streams.heap import FREEZE_EVERY_S, HeapKeeper
from streams.liveness import Health, Liveness
from streams.mirror import MirrorUpdate, RedisMirror
from streams.model_store import ModelStore, ModelStoreError
from streams.money import Converter
from streams.outbox import Outbox, Record, faust_producer
from streams.pipeline import BatchResult, Pipeline, PipelineConfig, RawMessage
from streams.redis_commands import connect
from streams.settings import Settings
from streams.snapshot import risk_snapshot
from streams.state_table import STORE_URL as STATE_STORE_URL
from streams.state_table import CustomerStates
from streams.task_dump import describe_tasks
from streams.topics import INPUT_TOPICS
from streams.training import Training, model_stores, untrained_models
from streams.write_behind import WriteBehind

log = logging.getLogger(__name__)

#: How long the first batch waits for the rulebooks topic before deciding with the configured file.
RULES_WAIT_S = 30.0
#: Batches processed while earlier ones are still being written (see ``SalesguardApp.begin``).
BATCHES_IN_FLIGHT = 4
#: How often the liveness metrics are refreshed (``/health`` checks when asked).
HEALTH_CHECK_S = 5.0
#: Largest batch of records the producer sends per partition. Faust's default (16 KB) splits a
#: batch's decisions and state changes into many produce requests, and the producer has one
#: request in flight per broker at a time: measured at 800 events/s (20,000-event bench), a
#: batch's outputs took 80-90 ms to be acknowledged with 16 KB, 40-60 ms with 1 MB, and the
#: worker spent 20 % less CPU (100,000-event runs vary too much between runs to show it).
#: Half a MB holds several batches' records per partition and stays below the 1 MB record-batch
#: limit (``message.max.bytes``) of Kafka brokers by default.
PRODUCER_BATCH_BYTES = 512 * 1024
#: Customers per slice of a timer's pass over every state (the stream runs between slices).
STATES_PER_SLICE = 1000
#: Decisions and customers staged for Redis beyond which the next batch waits for the writer
#: (while Redis takes writes). Without it, up to 7,000 customers and 2,700 decisions were staged
#: at times in a 300k-event backlog (100,000 customers), and the worker peaked at 301-364 MB;
#: with it, 261 and 278 MB.
REDIS_BACKLOG = 2_000

T = TypeVar("T")


def pipeline_config(settings: Settings) -> PipelineConfig:
    """The pipeline configuration the settings describe."""
    return PipelineConfig(
        rules=load_rulebook(settings.rulebook),
        converter=Converter(settings.fx_rates),
        base_currency=settings.base_currency,
        max_event_bytes=settings.max_event_bytes,
        retention_days=settings.retention_days,
        late_payment_days=settings.late_payment_days,
        future_tolerance_s=settings.future_tolerance_h * 3600 if settings.future_tolerance_h else None,
    )


@dataclass
class SalesguardApp:
    """The Faust app with the pieces tests and the CLI reach for."""

    app: faust.App
    settings: Settings
    pipeline: Pipeline
    states: CustomerStates
    mirror: RedisMirror | None
    audit: AuditTrail | None
    #: The model store of each kind of example (see :data:`EXAMPLE_PARTITIONS`): scored from.
    model_stores: dict[str, ModelStore]
    #: The trainers, when they learn in this worker (see :mod:`streams.training`).
    training: Training | None = None
    #: Whether the newest model version was asked for before the first batch.
    models_loaded: bool = False
    #: Whether the current stall was logged (once per stall).
    stall_logged: bool = False
    watermark: float = 0.0
    #: One batch at a time per worker, from processing to handing its records over: batches and
    #: timers share customer states, and records go to the producer in the order of processing.
    batch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Bounds the batches processed but not yet written (see :meth:`begin`).
    in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(BATCHES_IN_FLIGHT))
    #: The write of the newest batch begun; the next batch's write waits for it.
    last_write: asyncio.Future[BatchResult] | None = None
    #: Completes once the last batch has handed its state changes to the producer: True, or False
    #: when it failed before (see :meth:`_write`).
    last_states_queued: asyncio.Future[bool] | None = None
    #: Set once the rulebooks topic's history has been read (see :mod:`streams.rulebook_control`).
    rules_ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: Writes the mirror and the audit trail behind the stream (see :meth:`flush_redis`).
    redis_writes: WriteBehind = field(init=False)
    #: Whether the consumer makes progress (``/health``).
    liveness: Liveness = field(init=False)
    #: Hands output records to the producer (see :meth:`submit`).
    outbox: Outbox = field(default_factory=Outbox)

    def __post_init__(self) -> None:
        self.redis_writes = WriteBehind(self.flush_redis, limit=REDIS_BACKLOG)
        self.liveness = Liveness(self.settings.stall_after_s)

    @property
    def input_topics(self) -> dict[str, str]:
        """Full name -> logical name of every input topic."""
        return {self.settings.topic(name): name for name in INPUT_TOPICS}

    async def use_rulebook(self, book: CompiledRulebook) -> None:
        """Decide with ``book`` from the next batch on (never inside a batch)."""
        async with self.batch_lock:
            self.pipeline.config = dataclasses.replace(self.pipeline.config, rules=book)
        announce_rulebook(book)
        log.info("deciding with rulebook %s", book.version)

    async def consume(self, messages: Sequence[Message]) -> asyncio.Future[BatchResult]:
        """Begin one batch of messages consumed from the input topics (see
        :mod:`streams.batch_consumer`, which acks them when the returned future completes)."""
        logical = self.input_topics
        return await self.begin([
            RawMessage(topic=logical[m.topic], partition=m.partition, offset=m.offset, key=m.key,
                       value=m.value or b"", timestamp=m.timestamp)
            for m in messages
        ])

    async def handle(self, messages: Sequence[RawMessage]) -> BatchResult:
        """Process one batch of input messages and return once its outputs and state changes
        are with the broker."""
        return await (await self.begin(messages))

    async def begin(self, messages: Sequence[RawMessage]) -> asyncio.Future[BatchResult]:
        """Process one batch of input messages, hand its outputs to the producer and return a
        future that completes once the broker has them and the batch's state changes (only then
        may its input offsets be acked).

        The next batch is processed meanwhile (up to :data:`BATCHES_IN_FLIGHT` batches), so the
        broker's round trips are not on the decisions' path. Each batch's state changes go to
        the producer once its outputs are delivered, behind the previous batch's state changes.
        After a crash an order is therefore either not recorded (decided again: same state, same
        decision and id) or recorded with its decision already delivered.
        """
        started = time.perf_counter()
        if not self.models_loaded:  # one try before the first batch; then the refresh timer
            self.models_loaded = True
            await self.refresh_models()
        if not self.rules_ready.is_set():  # the first batch waits for the applied rulebook
            try:
                await asyncio.wait_for(self.rules_ready.wait(), RULES_WAIT_S)
            except TimeoutError:
                log.warning("rulebooks topic not read within %.0f s; deciding with %s", RULES_WAIT_S,
                            self.pipeline.config.rules.version)
                self.rules_ready.set()
        await self.redis_writes.caught_up()
        await self.in_flight.acquire()
        try:
            async with self.batch_lock:
                result = self.pipeline.process(messages, self.states.get)
                write = await self._hand_over(result, started)
        except BaseException:
            self.in_flight.release()
            raise
        write.add_done_callback(lambda _: self.in_flight.release())
        for _, state in result.changed.values():
            self.watermark = max(self.watermark, state.last_event_time)
        return write

    async def _hand_over(self, result: BatchResult, started: float) -> asyncio.Future[BatchResult]:
        """Hand a batch's outputs to the producer, store its changed states and begin writing
        them (see :meth:`_write`); under the batch lock."""
        outputs = await self.submit(self._output_records(result))
        requests = self.states.stage(result.changed, self.settings.changelog_end_markers)
        queued: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.last_write = write = asyncio.ensure_future(
            self._write(result, outputs, requests, self.last_states_queued, queued, self.last_write, started))
        self.last_states_queued = queued
        return write

    async def _write(self, result: BatchResult, outputs: Awaitable[object], requests: list[list[Record]],
                     previous_queued: asyncio.Future[bool] | None, queued: asyncio.Future[bool],
                     previous: asyncio.Future[BatchResult] | None, started: float) -> BatchResult:
        """Wait for a batch's outputs, then hand its state changes to the producer behind the
        previous batch's (``queued`` says whether that happened); done once the broker has them
        and the previous batch is done; then stage Redis and count the batch.

        The state records do not wait for the previous batch's to be acknowledged: Kafka keeps
        the order of one partition's records, and several batches' states share a produce
        request. A batch whose outputs failed, or that follows one which failed before handing
        its states over, writes no state and fails (with the earlier batch's error)."""
        handed_over = False
        try:
            await outputs
            if previous_queued is not None and not await previous_queued:
                await cast(asyncio.Future[BatchResult], previous)  # failed: raises why
            acks = [await self.submit(request) for request in requests]
            handed_over = True
        finally:
            queued.set_result(handed_over)
        for ack in acks:
            await ack
        if previous is not None:
            await previous
        self.liveness.progressed()
        staged = 0
        if self.mirror is not None:
            self.mirror.stage(self._mirror_update(result))
            staged = len(result.decisions) + len(result.changed)
        if self.audit is not None:
            self.audit.stage([decision_record(d) for d in result.decisions]
                             + [desk_record(a) for a in result.desk_actions])
        self.redis_writes.wake(staged)
        count_batch(result)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        if result.consumed:
            metrics.LAST_BATCH.labels("input").set_to_current_time()
        return result

    def health(self) -> Health:
        """The consumer's health now (see :mod:`streams.liveness`); updates its metrics. When
        the consumer turns stalled, what each task waits on is logged."""
        consumer = self.app.consumer
        lag = consumer.input_lag() if isinstance(consumer, BatchConsumer) else None
        now = self.liveness.check(lag)
        if now.stalled and not self.stall_logged:
            loops = [asyncio.get_event_loop()]
            if (thread := getattr(consumer, "_thread", None)) is not None:
                loops.append(thread.thread_loop)
            fetching = consumer.describe_fetching() if isinstance(consumer, BatchConsumer) else "(not batched)"
            log.error("consumer stalled: no batch written for %.0f s with %s input messages waiting; fetching:\n%s\n"
                      "tasks:\n%s", now.seconds_since_progress, lag, fetching, describe_tasks(loops))
        self.stall_logged = now.stalled
        return now

    def _output_records(self, result: BatchResult) -> list[Record]:
        """Decisions, holds, hold resolutions, dead letters and training examples of a batch."""
        topic = self.settings.topic
        bodies = result.decision_json
        bodies.update((d.decision_id, dumps(d)) for d in result.decisions)
        records = [Record(topic("decisions"), d.customer_id.encode(), bodies[d.decision_id]) for d in result.decisions]
        records += [Record(topic("order-holds"), h.customer_id.encode(), dumps(h)) for h in result.holds]
        records += [Record(topic("hold-resolutions"), r.customer_id.encode(), dumps(r)) for r in result.resolutions]
        records += [Record(topic("dead-letters"), x.key, dumps(x)) for x in result.dead_letters]
        for examples in example_records(result.examples):
            records.append(Record(topic("model-examples"), examples.kind.encode(), examples.value, examples.partition))
            metrics.MODEL_EXAMPLES_PUBLISHED.labels(examples.kind).inc(examples.examples)
        return records

    async def submit(self, records: Sequence[Record]) -> Awaitable[object]:
        """Hand ``records`` to the producer (see :mod:`streams.outbox`); what it returns completes
        once the broker has them all."""
        return await self.outbox.submit(faust_producer(self.app), records)

    async def send(self, records: Sequence[Record]) -> None:
        """Produce ``records`` and wait until the broker has them all."""
        await (await self.submit(records))

    async def flush_redis(self) -> bool:
        """Write what the mirror and the audit trail have staged; False when Redis failed (they
        keep it for the next flush)."""
        mirrored = await self.mirror.write(MirrorUpdate()) if self.mirror is not None else True
        audited = await self.audit.append([]) if self.audit is not None else True
        return mirrored and audited

    def _mirror_update(self, result: BatchResult) -> MirrorUpdate:
        return MirrorUpdate(
            # customers of redelivered events too: a worker that crashed before writing Redis
            # wrote their state, so their events come back as duplicates that change nothing
            customers=set(result.changed).union(result.duplicates),
            holds_opened={hold.order_id: hold for hold in result.holds if hold.outcome is Outcome.HOLD},
            holds_closed={order_id for _, order_id in result.holds_closed},
            decisions=list(result.decisions),
            resolutions=list(result.resolutions),
            decision_json=result.decision_json,
        )

    def snapshot(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's risk snapshot as of the latest event time this worker has seen, so
        days past due move on even for a customer that sends no events; None for a customer
        this worker does not hold (never seen, or its partition went to another worker)."""
        state = self.states.get(customer_id)
        if state is None:
            return None
        return risk_snapshot(state, max(self.watermark, state.last_event_time), self.settings.base_currency)

    async def refresh_models(self) -> bool:
        """Score with the newest saved model versions (each model from the trainer of its kind,
        see :meth:`RiskModels.combine`), if either is newer than the one scored with. True when
        the models changed; a store that cannot be read keeps the current models."""
        scored = {"order": self.pipeline.models.version, "credit": self.pipeline.models.credit_version or 0}
        try:
            saved = {kind: await store.version() for kind, store in self.model_stores.items()}
            if all(saved[kind] <= scored[kind] for kind in EXAMPLE_KINDS):
                return False
            parts = {kind: await self._saved_models(kind) for kind in EXAMPLE_KINDS}
        except (ModelStoreError, ModelSnapshotError) as exc:
            metrics.MODEL_STORE_ERRORS.inc()
            log.warning("cannot read model version (%s: %s); scoring with %s",
                        type(exc).__name__, exc, self.pipeline.models.label)
            return False
        models = self.pipeline.models = RiskModels.combine(parts["order"], parts["credit"])
        metrics.MODEL_VERSION.labels("order").set(models.version)
        metrics.MODEL_VERSION.labels("credit").set(models.credit_version or 0)
        metrics.MODELS.info({"version": self.pipeline.models.label})
        log.info("scoring with %s", self.pipeline.models.label)
        return True

    async def _saved_models(self, kind: str) -> RiskModels:
        """The newest models the trainer of ``kind`` saved (untrained ones before its first)."""
        checkpoint = await self.model_stores[kind].load()
        return RiskModels.from_bytes(checkpoint.models) if checkpoint else untrained_models(self.settings)

    async def refresh_overdue(self) -> tuple[int, int]:
        """Move the business clock on without events (timer, as of the newest event time this
        worker has seen), in one pass over every customer: publish a late label for every invoice
        now unpaid past the lateness threshold, re-mirror the customers who owe something so their
        days past due move on, and set the portfolio gauges (each state is decoded once for
        both). Returns ``(labels, customers re-mirrored)``; before any event, only the gauges.

        The pass takes :data:`STATES_PER_SLICE` customers at a time, batches being decided in
        between: with 100,000 customers it took the stream away for a second. It stops when a
        rebalance is under way: the table's recovery may be filling states in, and a state read
        before it applies a customer's newer record, written back, would undo events (seen in the
        reliability test: a state of 98 events written after one of 123)."""
        labels, owing = 0, set[str]()
        tally = PortfolioTally(self.watermark)
        async for customers in in_slices(self.states.customer_ids(), STATES_PER_SLICE):
            write = None
            async with self.batch_lock:
                if self.app.rebalancing:
                    log.info("overdue refresh stopped after %d labels: a rebalance is under way", labels)
                    return labels, 0
                held = [state for customer_id in customers if (state := self.states.get(customer_id)) is not None]
                for state in held:
                    tally.add(state)
                states = [state for state in held if state.receivables() > 0] if self.watermark else []
                examples = self.pipeline.label_overdue(states, self.watermark)
                if examples:  # their states now know the labels were taken: written like a batch's
                    by_id = {state.customer_id: state for state in states}
                    changed = {x.customer_id: (self.states.partition(x.customer_id), by_id[x.customer_id])
                               for x in examples}
                    write = await self._hand_over(BatchResult(examples=examples, changed=changed), time.perf_counter())
            if write is not None:
                await write
            labels += len(examples)
            owing.update(state.customer_id for state in states)
        publish_portfolio(tally.portfolio())
        if self.mirror is not None and owing:
            self.mirror.stage(MirrorUpdate(customers=owing))
            self.redis_writes.wake()
        return labels, len(owing)


async def in_slices(items: list[T], size: int) -> AsyncIterator[list[T]]:
    """``items`` a slice at a time, the event loop (the stream) running between slices."""
    for start in range(0, len(items), size):
        if start:
            await asyncio.sleep(0)
        yield items[start:start + size]


def announce_rulebook(book: CompiledRulebook) -> None:
    """Show in the metrics which rulebook decides and whether emergency mode is on."""
    metrics.RULEBOOK.info({"version": book.version, "rules": str(len(book.rules)),
                           "shadow": str(sum(rule.shadow for rule in book.rules))})
    metrics.EMERGENCY_MODE.set(1 if book.book.emergency.active else 0)


def mount_desk(app: faust.App, sg: SalesguardApp) -> None:
    """Serve the risk desk (:mod:`monitoring.desk`) on the worker's web server; its commands go
    to the ``risk-commands`` topic."""
    settings = sg.settings

    async def publish(command: InputEvent) -> None:
        await sg.send([Record(settings.topic("risk-commands"), command.customer_id.encode(), dumps(command))])

    async def switch_emergency(active: bool, segments: list[dict[str, str]], limit_factor: float | None) -> str:
        applied = await rulebook_control.switch_emergency(settings, active, segments, limit_factor)
        return rulebook_control.compile_applied(applied).version

    reader = connect(settings.redis_url, socket_timeout=2.0) if settings.redis_url else None
    backend = DeskBackend(settings=settings, redis=reader, publish=publish, switch_emergency=switch_emergency,
                          audit=sg.audit)
    mount(cast(Any, app.web).web_app, desk_app(backend))


def faust_app(settings: Settings) -> faust.App:
    """The Faust app (consumer group ``app_id``) with the broker, group timings, web server and
    data directory ``settings`` describe, serving the default Prometheus registry on ``/metrics``."""
    datadir = Path(settings.data_dir) / f"{settings.app_id}-{settings.web_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    brokers = [f"kafka://{server.strip()}" for server in (settings.kafka_bootstrap or "").split(",") if server.strip()]
    app = faust.App(
        settings.app_id,
        broker=brokers or "kafka://127.0.0.1:9092",
        store="memory://",
        autodiscover=False,
        datadir=str(datadir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
    )

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; Prometheus' type carries one.
        return web.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app


def serve_health(app: faust.App, check: Callable[[], Health]) -> None:
    """Serve ``check()`` on ``/health`` (503 when stalled), and run it every
    :data:`HEALTH_CHECK_S` for the liveness metrics."""

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        now = check()
        return web.json(now.as_dict(), status=503 if now.stalled else 200)

    @app.timer(HEALTH_CHECK_S, on_leader=False)
    async def health_metrics() -> None:
        check()


def train_in(app: faust.App, training: Training) -> None:
    """Run ``training``'s trainer task in ``app``, checkpoint every ``model_publish_s`` and once
    more when the app stops."""

    @app.task
    async def trainer() -> None:
        await training.run()

    @app.timer(training.settings.model_publish_s, on_leader=False)
    async def model_checkpoint() -> None:
        await training.checkpoint()

    @app.on_before_shutdown.connect
    async def final_checkpoint(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await training.checkpoint()


def build_app(settings: Settings) -> SalesguardApp:
    """Declare the Faust app, its table, batch consumer, tasks, timers and pages from ``settings``."""
    app = faust_app(settings)
    app.monitor = metrics.FaustMonitor(metrics=metrics.faust_metrics())  # Faust's internals on our /metrics
    # The changelog topic is declared here so that its values stay raw: the table's store holds
    # each state as its changelog record (see streams.state_table).
    changelog = app.topic(f"{settings.app_id}-customer-state-changelog", key_serializer="json",
                          value_serializer="raw", partitions=settings.partitions, compacting=True,
                          deleting=False, acks=False, internal=True, maxsize=131_072, allow_empty=True)
    table: Any = app.Table("customer-state", partitions=settings.partitions, changelog_topic=changelog,
                           store=STATE_STORE_URL)
    sg = SalesguardApp(app=app, settings=settings,
                       pipeline=Pipeline(pipeline_config(settings), models=untrained_models(settings)),
                       states=CustomerStates(table, changelog), mirror=None, audit=None,
                       model_stores=model_stores(settings))
    if settings.training == "in-worker":
        sg.training = Training(settings, sg.model_stores, sg.send, on_saved=sg.refresh_models)
    announce_rulebook(sg.pipeline.config.rules)
    if settings.redis_url:
        sg.mirror = RedisMirror(settings.redis_url, sg.snapshot)
        sg.audit = AuditTrail(settings.redis_url)
    # Input topics and training examples are consumed a fetch at a time (not through agents).
    routes: dict[str, BatchHandler] = {name: sg.consume for name in sg.input_topics}
    if sg.training is not None:
        routes[settings.topic("model-examples")] = sg.training.enqueue
        train_in(app, sg.training)
    use_batch_consumer(app, routes, settings.batch_size, settings.batch_window_ms / 1000)
    mount_desk(app, sg)

    if settings.kafka_bootstrap:  # deployed rulebooks arrive on the rulebooks topic
        @app.task
        async def follow_rulebooks() -> None:
            await rulebook_control.follow(settings, sg.use_rulebook, sg.rules_ready)
    else:  # no broker (tests): the configured rulebook is all there is
        sg.rules_ready.set()

    @app.timer(settings.overdue_refresh_s, on_leader=False)
    async def overdue_refresh() -> None:
        await sg.refresh_overdue()

    @app.task
    async def redis_writer() -> None:
        await sg.redis_writes.run()

    @app.on_partitions_revoked.connect
    async def mirror_before_giving_partitions_away(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Faust has waited for the batches in flight: what they staged goes out now, before
        # another worker owns (and mirrors) those customers.
        await sg.flush_redis()

    @app.on_rebalance_complete.connect
    async def mirror_partitions_taken_over(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Customers of partitions given away are forgotten. A worker that stopped abruptly may not
        # have mirrored its last batches: the owner refreshes every customer of its partitions.
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topic("orders")}
        held = sg.states.keep_only(owned)
        if sg.mirror is not None:
            sg.mirror.stage(MirrorUpdate(customers=held))
            sg.redis_writes.wake()

    @app.on_before_shutdown.connect
    async def final_redis_writes(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await sg.flush_redis()

    serve_health(app, sg.health)
    heap = HeapKeeper()

    @app.timer(FREEZE_EVERY_S, on_leader=False)
    async def keep_heap_out_of_the_collectors_way() -> None:
        heap.tick()

    @app.timer(settings.model_refresh_s, on_leader=False)
    async def model_refresh() -> None:
        await sg.refresh_models()

    return sg
