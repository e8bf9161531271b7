"""App settings: every Faust setting is accepted (honoured where it means something here),
a name neither has warns with the nearest known one, values are checked at import."""

from __future__ import annotations

import ssl
import warnings
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

import streamlog
from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.dsl.settings import UnknownSettingWarning
from tests.dsl.helpers import run

# Every keyword of faust-streaming 0.15's ``Settings.__init__`` (faust/types/settings/
# settings.py) but ``id``, with a value of the type Faust documents.
FAUST_SETTINGS: dict[str, object] = {
    "autodiscover": False,
    "datadir": "x-data",
    "tabledir": "tables",
    "debug": False,
    "env_prefix": "APP_",
    "id_format": "{id}-v{self.version}",
    "origin": "myproj.app",
    "timezone": "UTC",
    "version": 1,
    "agent_supervisor": "mode.OneForOneSupervisor",
    "broker": "kafka://localhost:9092",
    "broker_consumer": None,
    "broker_producer": None,
    "broker_api_version": "auto",
    "broker_check_crcs": True,
    "broker_client_id": "my-client",
    "broker_commit_every": 10_000,
    "broker_commit_interval": 2.8,
    "broker_commit_livelock_soft_timeout": 300.0,
    "broker_credentials": None,
    "broker_heartbeat_interval": 3.0,
    "broker_max_poll_interval": 1000.0,
    "broker_max_poll_records": 500,
    "broker_rebalance_timeout": 60.0,
    "broker_request_timeout": 90.0,
    "broker_session_timeout": 60.0,
    "ssl_context": None,
    "consumer_api_version": "auto",
    "consumer_max_fetch_size": 1 << 20,
    "consumer_auto_offset_reset": "earliest",
    "consumer_group_instance_id": None,
    "consumer_metadata_max_age_ms": 300_000,
    "consumer_connections_max_idle_ms": 540_000,
    "key_serializer": "raw",
    "value_serializer": "json",
    "logging_config": None,
    "loghandlers": [],
    "producer_acks": -1,
    "producer_api_version": "auto",
    "producer_compression_type": "gzip",
    "producer_linger_ms": 0,
    "producer_max_batch_size": 16384,
    "producer_max_request_size": 1_000_000,
    "producer_partitioner": None,
    "producer_request_timeout": 1200.0,
    "producer_threaded": False,
    "producer_metadata_max_age_ms": 300_000,
    "producer_connections_max_idle_ms": 540_000,
    "reply_create_topic": False,
    "reply_expires": timedelta(days=1),
    "reply_to": None,
    "reply_to_prefix": "f-reply-",
    "processing_guarantee": "at_least_once",
    "stream_buffer_maxsize": 4096,
    "stream_processing_timeout": 300.0,
    "stream_publish_on_commit": False,
    "stream_recovery_delay": 0.0,
    "stream_wait_empty": True,
    "store": "memory://",
    "table_cleanup_interval": 30.0,
    "table_key_index_size": 1000,
    "table_standby_replicas": 1,
    "topic_allow_declare": True,
    "topic_disable_leader": False,
    "topic_partitions": 8,
    "topic_replication_factor": 1,
    "cache": "memory://",
    "canonical_url": "http://localhost:6066",
    "web": "aiohttp://",
    "web_bind": "0.0.0.0",
    "web_application_options": None,
    "web_cors_options": None,
    "web_enabled": False,
    "web_graph_enabled": False,
    "web_host": "localhost",
    "web_in_thread": False,
    "web_metrics_enabled": False,
    "web_port": 6066,
    "web_router_enabled": False,
    "web_ssl_context": None,
    "web_stats_enabled": False,
    "web_tables_enabled": False,
    "web_transport": "tcp://",
    "worker_redirect_stdouts": True,
    "worker_redirect_stdouts_level": "WARN",
    "stream_ack_cancelled_tasks": True,
    "stream_ack_exceptions": True,
    "url": None,
    "env": None,
}


def test_every_faust_setting_is_accepted_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownSettingWarning)
        app = streamlog.App("every-setting", **FAUST_SETTINGS)
    conf = app.conf
    assert conf.broker == "kafka://localhost:9092"
    assert conf.producer_compression == "gzip"  # Faust's producer_compression_type
    assert conf.client_id == "my-client"
    assert conf.broker_max_poll_records == 500
    assert conf.timezone == ZoneInfo("UTC")
    assert conf.table_standby_replicas == FAUST_SETTINGS["table_standby_replicas"]  # in effect
    assert conf.extra["web_bind"] == "0.0.0.0"


def test_an_unknown_setting_warns_with_the_nearest_known_name():
    with pytest.warns(UnknownSettingWarning, match="'topic_partition'.*'topic_partitions'"):
        app = streamlog.App("typo", topic_partition=4)
    assert app.conf.topic_partitions == 8  # the typo changed nothing
    assert app.conf.extra == {"topic_partition": 4}


def test_an_impossible_value_still_fails_at_once():
    with pytest.raises(ImproperlyConfigured, match="topic_partitions must be >= 1"):
        streamlog.App("bad", topic_partitions=0)
    with pytest.raises(ImproperlyConfigured, match="timezone: unknown time zone"):
        streamlog.App("bad-tz", timezone="Mars/Olympus")


def test_version_makes_a_new_app_id_and_keeps_the_name():
    app = streamlog.App("orders", version=3, broker="file://./.streamlog")
    assert (app.conf.id, app.conf.name) == ("orders-v3", "orders")
    assert app.conf.app_datadir == "./.streamlog/state/orders"
    counts = app.Table("counts", default=int)
    assert counts.changelog_topic.name == "orders-v3-counts-changelog"
    assert streamlog.App("orders", version=1).conf.id == "orders"


def test_faust_broker_forms_and_durations():
    assert streamlog.App("a", broker="aiokafka://h:9092").conf.broker == "kafka://h:9092"
    both = streamlog.App("b", broker=["kafka://h1:9092", "kafka://h2:9092"]).conf.broker
    assert both == "kafka://h1:9092,h2:9092"
    conf = streamlog.App(
        "c", producer_linger=0.25, broker_commit_interval=timedelta(seconds=5)
    ).conf
    assert (conf.producer_linger_ms, conf.broker_commit_interval) == (250, 5.0)


def test_topic_disable_leader_and_topic_allow_declare(app_id):
    app = streamlog.App(
        app_id, broker="memory://", topic_disable_leader=True, topic_allow_declare=False
    )
    app.topic(f"{app_id}-declared")

    async def main() -> tuple[bool, list[str]]:
        async with app:
            return app.is_leader(), await app.admin().list_topics(include_internal=True)

    leader, topics = run(main())
    assert leader is False  # no leader topic: on_leader timers never run
    assert f"{app_id}-declared" not in topics  # declared, not created
    assert app.leader_topic_name not in topics


def test_reply_to_names_the_reply_topic():
    assert streamlog.App("r").conf.reply_topic == "r-replies"
    assert streamlog.App("r", reply_to="my-replies").conf.reply_topic == "my-replies"


def test_crontabs_use_the_app_timezone_by_default():
    app = streamlog.App("cron-tz", timezone="Europe/Paris")

    @app.crontab("0 9 * * *")
    def morning() -> None:
        pass

    assert app.timers[-1].crontab.tz == ZoneInfo("Europe/Paris")


def test_the_default_datadir_lives_in_a_file_log_and_follows_the_broker():
    # file://DIR: the stores go inside DIR, so removing DIR removes the app's state too
    app = streamlog.App("orders", broker="file://./.streamlog")
    assert app.conf.datadir == "./.streamlog/state/orders"
    assert streamlog.App("o", broker="file:///srv/log").conf.datadir == "/srv/log/state/o"
    # kafka:// and memory://: the worker's own directory, Faust's default
    assert streamlog.App("orders", broker="kafka://h:9092").conf.datadir == "orders-data"
    assert streamlog.App("orders", broker="memory://").conf.datadir == "orders-data"
    # the worker's --broker arrives after the app is made: the default moves with it
    app.conf.broker = "file:///tmp/elsewhere"
    assert app.conf.datadir == "/tmp/elsewhere/state/orders"
    app.conf.broker = "kafka://h:9092"
    assert app.conf.datadir == "orders-data"
    # an explicit datadir wins, whatever the broker; None is the default again
    app.conf.datadir = "mine"
    app.conf.broker = "file:///tmp/elsewhere"
    assert app.conf.datadir == "mine"
    app.conf.datadir = None
    assert app.conf.datadir == "/tmp/elsewhere/state/orders"
    given = streamlog.App("orders", broker="file://./.streamlog", datadir="/var/orders")
    assert given.conf.datadir == "/var/orders"
    given.conf.broker = "kafka://h:9092"
    assert given.conf.datadir == "/var/orders"


def test_broker_security_takes_a_client_security_and_tls_urls():
    security = streamlog.ClientSecurity(
        sasl_mechanism="SCRAM-SHA-512", sasl_username="app", sasl_password="pw"
    )
    app = streamlog.App(
        "secure",
        broker=["kafka+ssl://a:9093", "kafka+ssl://b:9093"],
        broker_security=security,
    )
    assert app.conf.broker == "kafka+ssl://a:9093,b:9093"
    assert app.conf.broker_security is security
    with pytest.raises(ImproperlyConfigured, match="several URLs must all be kafka://"):
        streamlog.App("mixed", broker=["kafka://a:9092", "kafka+ssl://b:9093"])
    with pytest.raises(ImproperlyConfigured, match="broker_security must be a streamlog"):
        streamlog.App("bad", broker_security={"sasl_mechanism": "PLAIN"})


def test_broker_credentials_become_the_client_security():
    """Faust's ``broker_credentials`` objects, mapped; TLS from a context in them."""
    context = ssl.create_default_context()
    sasl = streamlog.SASLCredentials(
        username="app", password="pw", mechanism="scram-sha-256", ssl_context=context
    )
    security = streamlog.App("creds", broker_credentials=sasl).conf.broker_security
    assert security is not None
    assert (security.sasl_mechanism, security.sasl_username, security.sasl_password) == (
        "SCRAM-SHA-256",
        "app",
        "pw",
    )
    on_plain_url = security.for_url(tls=False)
    assert on_plain_url.protocol == "SASL_SSL" and on_plain_url.ssl_context() is context
    plain = streamlog.App(
        "p", broker_credentials=streamlog.SASLCredentials(username="u", password="p")
    )
    assert plain.conf.broker_security is not None
    assert plain.conf.broker_security.for_url(tls=False).protocol == "SASL_PLAINTEXT"
    for given in (context, streamlog.SSLCredentials(context)):
        tls = streamlog.App("t", broker_credentials=given).conf.broker_security
        assert tls is not None and tls.for_url(tls=False).protocol == "SSL"
        assert tls.for_url(tls=False).ssl_context() is context


def test_broker_credentials_streamlog_cannot_use_are_clear_errors():
    with pytest.raises(ImproperlyConfigured, match=r"GSSAPI \(Kerberos\) is not supported"):
        streamlog.App("k", broker_credentials=streamlog.GSSAPICredentials())
    with pytest.raises(ImproperlyConfigured, match="OAUTHBEARER is not supported"):
        streamlog.App("o", broker_credentials=streamlog.OAuthCredentials(oauth_cb=object()))
    with pytest.raises(ImproperlyConfigured, match="mechanism 'GSSAPI' is not supported"):
        streamlog.App("g", broker_credentials=streamlog.SASLCredentials(mechanism="GSSAPI"))
    with pytest.raises(ImproperlyConfigured, match="not both"):
        streamlog.App(
            "b",
            broker_credentials=streamlog.SSLCredentials(),
            broker_security=streamlog.ClientSecurity(),
        )
    with pytest.raises(ImproperlyConfigured, match="must be SASLCredentials"):
        streamlog.App("d", broker_credentials={"username": "u"})


def test_processing_guarantee_names_of_every_framework_mean_the_same():
    import enum

    class ProcessingGuarantee(enum.Enum):  # Faust's enum (faust/types/enums.py), by value
        AT_LEAST_ONCE = "at_least_once"
        EXACTLY_ONCE = "exactly_once"

    for given, meant in [
        ("exactly_once", "exactly_once"),
        (ProcessingGuarantee.EXACTLY_ONCE, "exactly_once"),
        ("exactly_once_v2", "exactly_once"),  # Kafka Streams
        ("exactly-once", "exactly_once"),  # Quix Streams
        ("EXACTLY_ONCE", "exactly_once"),
        (ProcessingGuarantee.AT_LEAST_ONCE, "at_least_once"),
        ("at-least-once", "at_least_once"),
    ]:
        conf = streamlog.App("g", processing_guarantee=given).conf
        assert conf.processing_guarantee == meant, given
        assert conf.exactly_once is (meant == "exactly_once")
        assert conf.isolation_level == (
            "read_committed" if meant == "exactly_once" else "read_uncommitted"
        )
    with pytest.raises(ImproperlyConfigured, match="exactly_twice.*supported: at_least_once"):
        streamlog.App("g", processing_guarantee="exactly_twice")


def test_producer_transaction_timeout_is_bounded_like_kafkas():
    assert streamlog.App("g").conf.producer_transaction_timeout == 10.0
    conf = streamlog.App("g", producer_transaction_timeout=timedelta(seconds=30)).conf
    assert conf.producer_transaction_timeout == 30.0
    with pytest.raises(ImproperlyConfigured, match="at most 900 s"):
        streamlog.App("g", producer_transaction_timeout=901)
    with pytest.raises(ImproperlyConfigured, match="must be > 0"):
        streamlog.App("g", producer_transaction_timeout=0)
