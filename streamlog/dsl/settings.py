"""App settings, with Faust's names and meanings (``app.conf``).

Every setting faust-streaming has is accepted, so a Faust program's ``App(...)`` starts
unchanged. Those that mean something here are honoured (the table in docs/streams.md);
the others are kept in ``conf.extra`` and documented as accepted. A name no Faust or
streamlog setting has is not an error (Faust ignores such names too) but a warning that
names the nearest known setting, so a typo does not pass silently.

Values are checked once when the app is made, so an impossible value fails at import time
with the setting's name in the message, not later inside the worker.
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass, field, fields
from datetime import timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.transport.credentials import client_security
from streamlog.transport.errors import SecurityConfigError
from streamlog.transport.security import ClientSecurity

__all__ = [
    "Settings",
    "default_datadir",
    "DEFAULT_BROKER",
    "BROKER_ENV",
    "PROCESSING_GUARANTEES",
    "FAUST_ACCEPTED",
    "UnknownSettingWarning",
]

DEFAULT_BROKER = "file://./.streamlog"
BROKER_ENV = "STREAMLOG_BROKER"
PROCESSING_GUARANTEES = ("at_least_once", "exactly_once")
# Other frameworks' names for the same guarantees (Kafka Streams', Quix Streams')
_GUARANTEE_ALIASES = {
    "exactly_once_v2": "exactly_once",
    "exactly-once": "exactly_once",
    "at-least-once": "at_least_once",
}

# Faust settings accepted without an effect here (kept in ``conf.extra``), with why:
# docs/streams.md lists them.
FAUST_ACCEPTED = frozenset(
    {
        "agent_supervisor",  # agents restart by their on_error policy
        "autodiscover",  # agents are found by importing the app module
        "broker_api_version",
        "broker_check_crcs",  # every batch's CRC is always checked
        "broker_commit_livelock_soft_timeout",
        "broker_consumer",
        "broker_max_poll_interval",
        "broker_producer",
        "broker_rebalance_timeout",
        "broker_request_timeout",
        "cache",
        "consumer_api_version",
        "consumer_connections_max_idle_ms",
        "consumer_group_instance_id",
        "consumer_max_fetch_size",
        "consumer_metadata_max_age_ms",
        "crash_app_on_aerospike_exception",
        "aerospike_retries_on_exception",
        "aerospike_sleep_seconds_between_retries_on_exception",
        "debug",
        "env",
        "env_prefix",
        "logging_config",
        "loghandlers",
        "producer_api_version",
        "producer_connections_max_idle_ms",
        "producer_max_request_size",
        "producer_metadata_max_age_ms",
        "producer_partitioner",  # keys are placed by Kafka's murmur2, as tables need
        "producer_request_timeout",
        "producer_threaded",
        "recovery_consistency_check",
        "reply_create_topic",  # the reply topic is always created
        "reply_expires",
        "reply_to_prefix",  # the reply topic is "<id>-replies" unless reply_to names one
        "ssl_context",
        "store_check_exists",
        "stream_ack_cancelled_tasks",
        "stream_ack_exceptions",  # see agent_on_error
        "stream_processing_timeout",
        "stream_publish_on_commit",
        "stream_recovery_delay",
        "stream_wait_empty",
        "table_key_index_size",
        "url",
        "web",
        "web_application_options",
        "web_bind",
        "web_cors_options",
        "web_graph_enabled",
        "web_in_thread",
        "web_metrics_enabled",
        "web_router_enabled",
        "web_ssl_context",
        "web_stats_enabled",
        "web_tables_enabled",
        "web_transport",
        "worker_redirect_stdouts",
        "worker_redirect_stdouts_level",
    }
)

# Faust's spellings of settings streamlog has under another name.
_ALIASES = {
    "producer_compression_type": "producer_compression",
}


class UnknownSettingWarning(UserWarning):
    """An ``App`` setting neither Faust nor streamlog has (probably a typo)."""


@dataclass
class Settings:
    id: str
    broker: str = field(default_factory=lambda: os.environ.get(BROKER_ENV) or DEFAULT_BROKER)
    datadir: str | None = None  # default: follows the broker (``default_datadir``)
    tabledir: str = "tables"  # table stores go to <datadir>/<tabledir>
    version: int = 1  # Faust's: version > 1 makes a new, isolated app ("<id>-v<version>")
    id_format: str = "{id}-v{self.version}"
    origin: str | None = None  # where the app is imported from (Faust's; informational)
    timezone: Any = None  # tzinfo or a name; default UTC (crontabs without timezone=)
    topic_partitions: int = 8
    topic_allow_declare: bool = True  # False: use existing topics only, create none
    # copies of each partition of the topics the app creates on a kafka:// cluster
    # (None: the broker's default.replication.factor); embedded logs have one copy
    topic_replication_factor: int | None = None
    topic_disable_leader: bool = False  # True: no leader election (on_leader never runs)
    # "exactly_once": each commit is one transaction of outputs, changelogs and offsets
    # (Faust's ProcessingGuarantee values, Kafka Streams' and Quix's names accepted)
    processing_guarantee: str = "at_least_once"
    # exactly-once: a worker's open transaction is aborted this long after it stopped
    # committing (Kafka Streams' default under exactly-once; a restart of the same worker
    # aborts it at once)
    producer_transaction_timeout: float = 10.0
    broker_client_id: str | None = None  # default: the app id
    # SASL and TLS for kafka:// and kafka+ssl:// (None: from STREAMLOG_SASL_*/SSL_*; the
    # worker's --sasl-*/--ssl-* options replace it)
    broker_security: ClientSecurity | None = None
    # Faust's way to say the same: SASLCredentials, SSLCredentials or an ssl.SSLContext
    # (streamlog.transport.credentials); made into broker_security
    broker_credentials: Any = None
    broker_commit_every: int = 10_000
    broker_commit_interval: float = 2.8
    broker_session_timeout: float = 10.0
    broker_heartbeat_interval: float = 1.0
    broker_max_poll_records: int = 10_000
    consumer_auto_offset_reset: str = "earliest"
    # Kafka's partition.assignment.strategy, in order of preference: cooperative first, so
    # partitions that stay put are processed on through a rebalance (KIP-429); "range"
    # after it lets a group with eager-only members (aiokafka, older clients) agree on it.
    # The embedded groups (memory://, file://) are always cooperative.
    consumer_partition_assignment_strategy: tuple[str, ...] = ("cooperative-sticky", "range")
    key_serializer: str = "raw"
    value_serializer: str = "json"
    reply_to: str | None = None  # the reply topic of ``ask`` (default "<id>-replies")
    stream_buffer_maxsize: int = 4096  # channel values waiting per reader
    stream_inbox_batches: int = 8  # fetched batches waiting per agent (back-pressure)
    # "crash" (stop the worker, the failing event uncommitted: nothing is lost, as in Kafka
    # Streams and Quix), "restart" (skip the event: Faust's behaviour) or "dlq"
    agent_on_error: str = "crash"
    producer_acks: int = -1
    producer_linger_ms: int = 5
    producer_linger: float | None = None  # Faust's, in seconds (wins over producer_linger_ms)
    producer_compression: str = "none"
    producer_max_batch_size: int = 1 << 20
    web_enabled: bool = False
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    canonical_url: str | None = None  # the URL other workers forward requests to (web.md)
    shutdown_timeout: float = 30.0
    store: str = "rocksdb://"  # table stores: "rocksdb://" or "memory://"
    table_cleanup_interval: float = 30.0
    # Faust's: other workers keep this many warm copies of each table partition, following
    # its changelog, so a failover replays only the tail (0: none)
    table_standby_replicas: int = 1
    table_standby_interval: float = 0.5  # the longest a standby's changelog fetch waits
    extra: dict[str, Any] = field(default_factory=dict)
    name: str = field(default="", init=False)  # the id as given (``id`` adds the version)

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise ImproperlyConfigured(f"an App needs an id (a non-empty string), got {self.id!r}")
        bad = set(self.id) - set(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
        )
        if bad:
            raise ImproperlyConfigured(
                f"app id {self.id!r} may use only letters, digits, '.', '_' and '-' "
                f"(it names topics and the consumer group); found {''.join(sorted(bad))!r}"
            )
        if int(self.version) < 1:
            raise ImproperlyConfigured(f"version must be >= 1, not {self.version!r}")
        self.name = self.id
        if self.version > 1:
            self.id = self.id_format.format(id=self.name, self=self)
        self.broker = _broker_url(self.broker)
        self.timezone = _timezone(self.timezone)
        if self.broker_security is not None and not isinstance(
            self.broker_security, ClientSecurity
        ):
            raise ImproperlyConfigured(
                "broker_security must be a streamlog.ClientSecurity, "
                f"not {type(self.broker_security).__name__}"
            )
        if self.broker_credentials is not None:
            if self.broker_security is not None:
                raise ImproperlyConfigured(
                    "give broker_credentials (Faust's) or broker_security, not both"
                )
            try:
                self.broker_security = client_security(self.broker_credentials)
            except SecurityConfigError as exc:
                raise ImproperlyConfigured(str(exc)) from None
        guarantee = str(getattr(self.processing_guarantee, "value", self.processing_guarantee))
        guarantee = _GUARANTEE_ALIASES.get(guarantee.lower(), guarantee.lower())
        if guarantee not in PROCESSING_GUARANTEES:
            raise ImproperlyConfigured(
                f"processing_guarantee={self.processing_guarantee!r} is not supported "
                f"(supported: {', '.join(PROCESSING_GUARANTEES)})"
            )
        self.processing_guarantee = guarantee
        factor = self.topic_replication_factor
        if factor is not None and (isinstance(factor, bool) or int(factor) < 1):
            raise ImproperlyConfigured(
                f"topic_replication_factor must be >= 1 (or None: the broker's default), "
                f"not {factor!r}"
            )
        for name in (
            "topic_partitions",
            "broker_commit_every",
            "broker_max_poll_records",
            "stream_buffer_maxsize",
            "stream_inbox_batches",
        ):
            if int(getattr(self, name)) < 1:
                raise ImproperlyConfigured(f"{name} must be >= 1, not {getattr(self, name)!r}")
        if (
            not isinstance(self.table_standby_replicas, int)
            or isinstance(self.table_standby_replicas, bool)
            or self.table_standby_replicas < 0
        ):
            raise ImproperlyConfigured(
                "table_standby_replicas must be a whole number >= 0, not "
                f"{self.table_standby_replicas!r}"
            )
        for name in (
            "broker_commit_interval",
            "broker_session_timeout",
            "producer_transaction_timeout",
            "shutdown_timeout",
            "table_standby_interval",
        ):
            value = getattr(self, name)
            if isinstance(value, timedelta):  # Faust takes seconds or timedeltas
                value = value.total_seconds()
                setattr(self, name, value)
            if float(value) <= 0:
                raise ImproperlyConfigured(f"{name} must be > 0, not {value!r}")
        if self.producer_transaction_timeout > 900:
            raise ImproperlyConfigured(
                "producer_transaction_timeout must be at most 900 s (Kafka's "
                f"transaction.max.timeout.ms default), not {self.producer_transaction_timeout!r}"
            )
        if self.consumer_auto_offset_reset not in ("earliest", "latest"):
            raise ImproperlyConfigured("consumer_auto_offset_reset must be 'earliest' or 'latest'")
        strategy = self.consumer_partition_assignment_strategy
        if isinstance(strategy, str):
            strategy = self.consumer_partition_assignment_strategy = (strategy,)
        known = ("cooperative-sticky", "range", "roundrobin")
        if not strategy or any(name not in known for name in strategy):
            raise ImproperlyConfigured(
                f"consumer_partition_assignment_strategy must name assignors among {known}, "
                f"not {strategy!r}"
            )
        if self.store not in ("rocksdb://", "memory://"):
            raise ImproperlyConfigured(
                f"store must be 'rocksdb://' or 'memory://', not {self.store!r}"
            )
        if self.producer_linger is not None:
            self.producer_linger_ms = round(float(self.producer_linger) * 1000)
        self.__dict__["_datadir_follows_broker"] = self.datadir is None
        if self.datadir is None:
            object.__setattr__(self, "datadir", default_datadir(self.broker, self.name))

    def __setattr__(self, name: str, value: Any) -> None:
        """A ``datadir`` left to its default follows ``broker``: the worker's ``--broker``
        (set after the app was made) moves the table stores along with the log; setting
        ``datadir`` to None returns it to its default."""
        if name == "datadir" and "_datadir_follows_broker" in self.__dict__:
            self.__dict__["_datadir_follows_broker"] = value is None
            if value is None:
                value = default_datadir(self.broker, self.name)
        object.__setattr__(self, name, value)
        if name == "broker" and self.__dict__.get("_datadir_follows_broker"):
            object.__setattr__(self, "datadir", default_datadir(value, self.name))

    @classmethod
    def from_kwargs(cls, id: str, options: dict[str, Any]) -> Settings:
        """Settings from ``App(id, **options)``: streamlog's and Faust's names; anything
        else is ignored with an ``UnknownSettingWarning`` naming the nearest known one."""
        known = {f.name for f in fields(cls) if f.init} - {"id", "extra"}
        given: dict[str, Any] = {}
        extra: dict[str, Any] = dict(options.pop("extra", None) or {})
        for name, value in options.items():
            name = _ALIASES.get(name, name)
            if name in known:
                given[name] = value
            elif name in FAUST_ACCEPTED:
                extra[name] = value
            else:
                extra[name] = value
                nearest = difflib.get_close_matches(name, sorted(known | FAUST_ACCEPTED), n=1)
                hint = f" (did you mean {nearest[0]!r}?)" if nearest else ""
                warnings.warn(
                    f"unknown App setting {name!r}{hint}: ignored",
                    UnknownSettingWarning,
                    stacklevel=4,
                )
        return cls(id=id, extra=extra, **given)

    @property
    def app_datadir(self) -> str:
        """Where this app's data lives (``datadir``, by default ``default_datadir``)."""
        return self.datadir or default_datadir(self.broker, self.name)

    @property
    def exactly_once(self) -> bool:
        """Each commit is one transaction (``processing_guarantee="exactly_once"``)."""
        return self.processing_guarantee == "exactly_once"

    @property
    def isolation_level(self) -> str:
        """What the app's consumers read: only committed transactions under exactly-once
        (so aborted attempts, of this app or an upstream one, are never processed)."""
        return "read_committed" if self.exactly_once else "read_uncommitted"

    @property
    def client_id(self) -> str:
        """What the app's clients call themselves (``broker_client_id``, default the id)."""
        return self.broker_client_id or self.id

    @property
    def reply_topic(self) -> str:
        """Where replies to this app's ``ask`` come back."""
        return self.reply_to or f"{self.id}-replies"


STATE_DIR = "state"


def default_datadir(broker: str, name: str) -> str:
    """Where an app named ``name`` keeps its table stores when ``datadir`` is not given.

    On ``file://DIR`` the stores are the local half of changelogs kept in DIR, so they
    live there too, in ``DIR/state/<name>``: deleting DIR (``rm -rf .streamlog``) removes
    the app's state with its log, so a new start never finds stores ahead of changelogs
    that no longer exist, and apps sharing DIR keep apart. The log engine takes only
    ``<topic>-<N>`` directories for partitions, so ``state`` is left alone.
    On ``kafka://`` (and ``memory://``) the log is elsewhere (or nowhere) and each worker
    process needs stores of its own: ``./<name>-data``, where the worker runs (Faust's
    default); a second worker on the same machine is given its own ``datadir``.
    """
    scheme, sep, rest = broker.partition("://")
    if sep and scheme.lower() == "file" and rest:
        return os.path.join(os.path.expanduser(rest), STATE_DIR, name)
    return f"{name}-data"


def _broker_url(value: Any) -> str:
    """Faust's broker forms as a streamlog URL: a list of URLs, ``aiokafka://``."""
    if isinstance(value, list | tuple):
        urls = [_broker_url(v) for v in value]
        for scheme in ("kafka://", "kafka+ssl://"):
            if all(u.startswith(scheme) for u in urls):
                return scheme + ",".join(u[len(scheme) :] for u in urls)
        if len(urls) == 1:
            return urls[0]
        raise ImproperlyConfigured(
            f"broker: several URLs must all be kafka:// (or all kafka+ssl://), got {value!r}"
        )
    text = str(value)
    for scheme in ("aiokafka://", "confluent://"):
        if text.startswith(scheme):
            return "kafka://" + text[len(scheme) :]
    return text


def _timezone(value: Any) -> tzinfo | None:
    if value is None or isinstance(value, tzinfo):
        return value
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ImproperlyConfigured(f"timezone: unknown time zone {value!r}") from exc
