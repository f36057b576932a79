"""Configuration: one settings object, read once from ``SALESGUARD_*`` environment variables.

Every field can be set as ``SALESGUARD_<FIELD>`` (case-insensitive). Invalid values fail at
start with the variable that is wrong:

>>> Settings(partitions=4).partitions
4
>>> try:
...     Settings(partitions=0)
... except ConfigError as exc:
...     print(exc)
invalid configuration:
  SALESGUARD_PARTITIONS: Input should be greater than or equal to 1 (got 0)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from monitoring.access import DeskUser

ENV_PREFIX = "SALESGUARD_"
#: Variables whose values are never repeated in error messages.
SECRET_VARIABLES = frozenset({ENV_PREFIX + "DESK_TOKENS"})

#: Exchange rates to the base currency (EUR) used when none are configured. A risk desk sets
#: its treasury's rates with ``SALESGUARD_FX_RATES='{"EUR": 1, "USD": 0.92, ...}'``.
DEFAULT_FX_RATES: dict[str, float] = {
    "EUR": 1.0,
    "USD": 0.92,
    "GBP": 1.17,
    "CHF": 1.05,
    "SEK": 0.088,
    "PLN": 0.23,
    "JPY": 0.0062,
}


class ConfigError(Exception):
    """Configuration that cannot be used; the message names every bad variable."""


class Settings(BaseSettings):
    """All salesguard configuration. Field ``x`` is read from ``SALESGUARD_X``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # --- where the services are -------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers, host:port[,host:port]. Unset: the demo starts an embedded broker."
    )
    redis_url: str | None = Field(
        None, description="Redis URL, e.g. redis://127.0.0.1:6379/0. Unset: the demo starts an embedded server."
    )

    # --- stream layout ----------------------------------------------------------------------
    app_id: str = Field("salesguard", min_length=1, description="Faust app id = Kafka consumer group.")
    topic_prefix: str = Field("", description="Prefix for every topic name, e.g. 'prod.'.")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of every input topic and table.")
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")

    # --- worker -----------------------------------------------------------------------------
    web_host: str = Field("127.0.0.1", description="Address the worker's web server binds.")
    web_port: int = Field(6066, ge=1, le=65535, description="Port of the worker's web server; one per worker.")
    data_dir: str = Field(".salesguard", description="Directory for worker data (Faust's datadir).")
    batch_size: int = Field(500, ge=1, le=100_000, description="Events processed together at most (a batch is what "
                            "one fetch from the broker brought, up to this many).")
    batch_window_ms: float = Field(
        0.0, ge=0, le=1000, description="Shortest time between two fetches the worker takes (as Faust's "
        "stream.take(n, within=...)): at a light load, events gather into fewer, larger batches (less CPU per "
        "event) for up to this much latency per decision; a load that keeps the worker busy longer never waits. "
        "0: every fetch at once.")
    rebalance_timeout_s: float = Field(30.0, gt=0, description="Kafka consumer-group rebalance timeout.")
    session_timeout_s: float = Field(30.0, gt=0, description="Kafka consumer-group session timeout.")
    heartbeat_interval_s: float = Field(3.0, gt=0, description="Kafka consumer-group heartbeat interval.")
    changelog_end_markers: bool = Field(
        False, description="Close every batch of state writes with a one-record marker batch. Needed where "
        "the broker under-reports a partition's end offset (the embedded Tansu 0.6), so recovery reads it all.")
    standby_replicas: int = Field(
        0, ge=0, le=8, description="Workers that keep a hot standby copy of each partition's customer states "
        "(read from the changelog), as Kafka Streams' num.standby.replicas: a standby takes over a failed worker's "
        "partitions at once, but each copy costs its worker about as much CPU as the state writes it follows "
        "(with 1, two workers decide no faster than one). 0: a worker taking over reads the changelog first.")
    overdue_refresh_s: float = Field(60.0, gt=0, description="How often overdue status is refreshed without events.")
    stall_after_s: float = Field(
        60.0, gt=0, description="A worker with input waiting that wrote no batch for this long is stalled: /health "
        "answers 503 and salesguard_consumer_stalled is 1 (table recovery after a rebalance counts as no progress).")
    log_level: str = Field("info", pattern="^(debug|info|warning|error|critical)$", description="Worker log level.")

    # --- money ------------------------------------------------------------------------------
    fx_rates: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_FX_RATES),
        description="Rate to the base currency per ISO 4217 code; a currency not listed is dead-lettered.",
    )
    base_currency: str = Field("EUR", pattern="^[A-Z]{3}$", description="Currency of every exposure and limit.")

    # --- input hygiene and state retention --------------------------------------------------
    max_event_bytes: int = Field(65_536, ge=1024, description="Larger messages are dead-lettered.")
    retention_days: int = Field(
        30, ge=1, description="Closed orders/invoices are forgotten this many days (event time) after closing; "
        "duplicates older than that are no longer recognised.")
    future_tolerance_h: float = Field(
        24.0, ge=0, description="An event whose event_time lies more than this many hours after its message was "
        "produced is dead-lettered (event_time_in_future): one bad clock must not move a worker's business clock. "
        "0 turns the check off, for simulated traffic whose clock runs ahead of the wall clock (demo and bench do).")

    # --- rules --------------------------------------------------------------------------------
    rulebook: Path | None = Field(
        None, description="Rulebook file (YAML, see README \"Rulebook\"); the shipped default when unset. "
        "Checked at start: an invalid rulebook stops the worker with every error listed.")

    # --- models -------------------------------------------------------------------------------
    late_payment_days: int = Field(
        30, ge=0, le=365, description="An invoice paid more than this many days after due (or written off) is "
        "'late' for the credit model; unpaid that long, it is labelled late without waiting.")
    anomaly_min_examples: int = Field(
        1000, ge=0, description="Orders learned before anomaly scores are reported and used by rules.")
    credit_min_labels: int = Field(
        100, ge=0, description="Invoice outcomes learned before late-payment probabilities are reported and used.")
    model_publish_s: float = Field(
        30.0, gt=0, description="How often each trainer checkpoints a new model version to Redis (and acks what "
        "it learned); while it catches up on a backlog, also after every 5,000 of its examples.")
    model_refresh_s: float = Field(5.0, gt=0, description="How often workers look for a newer model version.")
    training: Literal["in-worker", "separate"] = Field(
        "in-worker", description="Where the models learn: 'in-worker' - in the workers (a worker that owns a kind's "
        "model-examples partition trains it between batches); 'separate' - in `salesguard trainer`, a process of "
        "its own (its own consumer group), and the workers only score (see README, Models and Performance).")
    model_seed: int = Field(0, description="Random seed of the models (half-space trees).")

    # --- the risk desk ----------------------------------------------------------------------
    desk_tokens: list[DeskUser] = Field(
        default_factory=list,
        description="Desk users as JSON: [{\"user\": \"alice\", \"role\": \"analyst\", \"token\": \"<16+ chars>\"}]; "
                    "roles viewer, analyst, admin. Without any, the desk API refuses every call.")
    desk_max_body_bytes: int = Field(16_384, ge=256, le=1_048_576, description="Largest desk request body.")

    @field_validator("desk_tokens")
    @classmethod
    def _unique_users_and_tokens(cls, users: list[DeskUser]) -> list[DeskUser]:
        names = [user.user for user in users]
        if len(set(names)) != len(names):
            raise ValueError("a user is listed twice")
        if len({user.token.get_secret_value() for user in users}) != len(users):
            raise ValueError("two users share a token")
        return users

    @field_validator("fx_rates")
    @classmethod
    def _rates_are_positive(cls, rates: dict[str, float]) -> dict[str, float]:
        for code, rate in rates.items():
            if len(code) != 3 or not code.isalpha() or not code.isupper():
                raise ValueError(f"currency code {code!r} is not an ISO 4217 code like 'EUR'")
            if not rate > 0:
                raise ValueError(f"rate for {code} must be > 0, got {rate}")
        return rates

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(describe_errors(exc)) from None
        except SettingsError as exc:  # a JSON variable that does not parse; its value is not shown
            field = re.search(r'field "(\w+)"', str(exc))
            name = ENV_PREFIX + field.group(1).upper() if field else f"a {ENV_PREFIX}* variable"
            raise ConfigError(f"invalid configuration:\n  {name}: not valid JSON") from None

    @field_validator("base_currency")
    @classmethod
    def _base_currency_has_rate(cls, code: str, info: ValidationInfo) -> str:
        if code not in info.data.get("fx_rates", {code: 1.0}):
            raise ValueError(f"{code} has no rate in SALESGUARD_FX_RATES")
        return code

    def as_environment(self) -> dict[str, str]:
        """These settings as ``SALESGUARD_*`` variables, to hand to a child worker."""
        env = {}
        for name, value in self.model_dump(exclude={"desk_tokens"}).items():
            if value is not None:
                env[ENV_PREFIX + name.upper()] = json.dumps(value) if isinstance(value, dict) else str(value)
        env[ENV_PREFIX + "DESK_TOKENS"] = json.dumps(  # the secrets themselves: the child needs them
            [{**user.model_dump(), "token": user.token.get_secret_value()} for user in self.desk_tokens])
        return env

    def topic(self, name: str) -> str:
        """The full name of topic ``name`` (``topic_prefix`` + name)."""
        return f"{self.topic_prefix}{name}"

    def with_defaults(self, defaults: Mapping[str, Any]) -> Settings:
        """These settings with ``defaults`` for every field not set explicitly (environment).

        >>> Settings(partitions=8).with_defaults({"partitions": 2, "batch_size": 50}).partitions
        8
        """
        return self.model_copy(update={name: value for name, value in defaults.items()
                                       if name not in self.model_fields_set})


def describe_errors(exc: ValidationError) -> str:
    """One line per bad field, named as the environment variable a user sets."""
    lines = ["invalid configuration:"]
    for error in exc.errors():
        first, *inside = [str(part) for part in error["loc"]] or ["?"]
        variable = ENV_PREFIX + first.upper()
        where = f" [{'.'.join(inside)}]" if inside else ""
        got = "" if variable in SECRET_VARIABLES else f" (got {error.get('input')!r})"
        lines.append(f"  {variable}{where}: {error['msg']}{got}")
    return "\n".join(lines)
