"""Prometheus metrics of the daemon, in a registry of its own (served on /metrics).

Work functions return results; the daemon records them here, so the publisher and the poller
stay free of metrics code. API calls are counted by the HTTP pools' retry transport
(`api/retry.py`, into `api/call_metrics.API_CALLS`): every attempt of the process, polls and
publish jobs alike.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from claresia_sync import __version__
from claresia_sync.api.call_metrics import API_CALLS, CallCounter


class _ApiCalls(Collector):
    def __init__(self, calls: CallCounter) -> None:
        self._calls = calls

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "claresia_api_calls",
            "Anthropic API attempts by method, route template and status (HTTP code, "
            "'timeout' or 'connection_error')",
            labels=["method", "route", "status"],
        )
        for labels, count in self._calls.samples():
            family.add_metric([labels["method"], labels["route"], labels["status"]], count)
        yield family


class Metrics:
    def __init__(self, calls: CallCounter = API_CALLS) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.publish_lag = Histogram(
            "claresia_publish_lag_seconds",
            "Publish job lag: requested until the last skill was live with its ACL",
            buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900),
            registry=r,
        )
        self.jobs = Gauge(
            "claresia_publish_jobs",
            "Publish jobs in the queue table by status",
            ["status"],
            registry=r,
        )
        self.skills_disabled = Gauge(
            "claresia_skills_disabled",
            "Skills the kill switch took away now (one per skill and tenant, or every tenant)",
            registry=r,
        )
        self.jobs_finished = Counter(
            "claresia_publish_jobs_finished",
            "Publish jobs this process finished, by status",
            ["status"],
            registry=r,
        )
        self.events_ingested = Counter(
            "claresia_telemetry_events_ingested",
            "Audit events written to telemetry_event",
            ["org_id"],
            registry=r,
        )
        self.events_quarantined = Counter(
            "claresia_telemetry_events_quarantined",
            "Audit events kept in quarantine",
            ["org_id"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "claresia_audit_poll_duration_seconds",
            "Duration of one audit-log poll of an org",
            ["org_id"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.poll_errors = Counter(
            "claresia_audit_poll_errors", "Audit-log polls that failed", ["org_id"], registry=r
        )
        self.checkpoint_age = Gauge(
            "claresia_audit_checkpoint_age_seconds",
            "Seconds since the org's audit checkpoint was last advanced or confirmed",
            ["org_id"],
            registry=r,
        )
        # Telemetry sources of real organisations (issue 16): this process's runs, and where
        # each source stands (read from telemetry_source, whichever replica ran it).
        self.source_rows = Counter(
            "claresia_source_rows",
            "Rows a telemetry source stored (new or revised), by source and organisation",
            ["source", "org_id"],
            registry=r,
        )
        self.source_errors = Counter(
            "claresia_source_errors",
            "Runs of a telemetry source that failed, by source and organisation",
            ["source", "org_id"],
            registry=r,
        )
        self.source_last_success = Gauge(
            "claresia_source_last_success_timestamp_seconds",
            "When a telemetry source last ran without error (Unix time), by source and org",
            ["source", "org_id"],
            registry=r,
        )
        self.source_lag = Gauge(
            "claresia_source_lag_seconds",
            "Seconds between now and the newest instant a source's stored data covers",
            ["source", "org_id"],
            registry=r,
        )
        self.otlp_requests = Counter(
            "claresia_otlp_requests",
            "OTLP/HTTP export requests the receiver answered, by HTTP status",
            ["status"],
            registry=r,
        )
        self.up = Gauge("claresia_up", "1 while the daemon is running and not draining", registry=r)
        Info("claresia_build", "The running version", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self.poll_last_success = Gauge(
            "claresia_audit_poll_last_success_timestamp_seconds",
            "Unix time of the org's last audit-log poll that succeeded",
            ["org_id"],
            registry=r,
        )
        self.job_last_success = Gauge(
            "claresia_publish_last_success_timestamp_seconds",
            "Unix time this replica last finished a publish job that succeeded, by the job's "
            "tenant ('all' for a job of every tenant)",
            ["tenant"],
            registry=r,
        )
        # Rollouts (rollout/): read from the database, whichever replica advanced them.
        self.rollout_halted = Gauge(
            "claresia_rollout_halted",
            "1 while a rollout is halted (a guardrail tripped, a publish job failed, or an "
            "operator halted it), by rollout id and release",
            ["rollout", "release"],
            registry=r,
        )
        self.rollout_wave = Gauge(
            "claresia_rollout_wave",
            "The wave a running or halted rollout is at, by rollout id and release",
            ["rollout", "release"],
            registry=r,
        )
        r.register(_ApiCalls(calls))
