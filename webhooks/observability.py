"""What an operator watches: `/metrics` (Prometheus text format), `/healthz` (the process is alive:
it never touches the database, so a stalled database never makes a liveness probe restart the App)
and `/readyz` (its database answers, or 503 within the store's call timeout).

Counts that several processes share — jobs by state, queue depth, deliveries stored — are read from
the database at scrape time, so every replica reports the same truth. Counts of what one process
did — deliveries by decision, runs by outcome and their durations, agents, cost — are its own
counters; Prometheus adds them up across the replicas it scrapes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.jobs import FINAL_STATES, RUN_LANE, Job, JobState, JobStore

from .kinds import JobKind, request_of
from .readiness import DB_UNREACHABLE, Readiness

log = logging.getLogger(__name__)


RUN_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


class StoreCollector(Collector):
    """Jobs by state, queue depth per lane and deliveries stored, read from the database."""

    def __init__(self, store: JobStore):
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts, depth, deliveries = (
                self.store.counts(),
                self.store.queue_depth(),
                self.store.delivery_count(),
            )
        except self.store.errors as e:
            log.warning("metrics: %s (%s)", DB_UNREACHABLE, type(e).__name__)
            up = GaugeMetricFamily("rlm_database_up", "1 when the job database answered this scrape")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("rlm_database_up", "1 when the job database answered this scrape")
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("rlm_jobs", "Jobs in the database by state", labels=["state"])
        for state in JobState:
            jobs.add_metric([state.value], counts.get(state.value, 0))
        yield jobs
        queue = GaugeMetricFamily("rlm_queue_depth", "Queued jobs by lane", labels=["lane"])
        for lane, n in sorted(depth.items()):
            queue.add_metric([lane], n)
        yield queue
        stored = GaugeMetricFamily(
            "rlm_deliveries_stored", "Deliveries recorded in the database (all replicas)"
        )
        stored.add_metric([], deliveries)
        yield stored


class Metrics:
    """One process's metrics, in their own registry (so several apps in one process do not clash)."""

    def __init__(self, store: JobStore, results_dir: Path | None = None):
        self.registry = CollectorRegistry()
        self.results_dir = results_dir
        self.deliveries = Counter(
            "rlm_deliveries",
            "Webhook deliveries answered by this process, by decision",
            ["decision"],
            registry=self.registry,
        )
        self.jobs_finished = Counter(
            "rlm_jobs_finished",
            "Jobs this process finished, by kind and state",
            ["kind", "state"],
            registry=self.registry,
        )
        self.run_seconds = Histogram(
            "rlm_run_duration_seconds",
            "Wall time of runs this process ran, by outcome",
            ["outcome"],
            buckets=RUN_BUCKETS,
            registry=self.registry,
        )
        self.agents = Counter("rlm_agents", "Agents started by runs this process ran", registry=self.registry)
        self.cost = Counter(
            "rlm_cost_usd", "Model cost (USD) of runs this process ran", registry=self.registry
        )
        self.registry.register(StoreCollector(store))

    def delivery(self, status: int) -> None:
        decision = {202: "queued", 200: "ignored", 409: "duplicate"}.get(status)
        self.deliveries.labels(decision or ("refused" if status < 500 else "error")).inc()

    def job_done(self, job: Job, seconds: float) -> None:
        """The WorkerPool's `on_done`: count what a job ended as; for a run, its time, agents, cost."""
        if job.state not in FINAL_STATES:
            return  # an accepted run handed on to the run lane
        self.jobs_finished.labels(job.kind, str(job.state)).inc()
        if job.kind != JobKind.RUN or job.lane != RUN_LANE:
            return
        self.run_seconds.labels(job.outcome or str(job.state)).observe(seconds)
        totals = self._totals(job)
        self.agents.inc(totals.get("agents") or 0)
        self.cost.inc(totals.get("cost_usd") or 0.0)

    def _totals(self, job: Job) -> dict:
        run_id = request_of(job).run_id
        if not (self.results_dir and run_id):
            return {}
        try:
            return json.loads((self.results_dir / f"{run_id}.json").read_text()).get("totals") or {}
        except (OSError, ValueError):
            return {}

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def mount_probes(
    app: Flask, store: JobStore, metrics: Metrics, *, workers: bool, readiness: Readiness
) -> None:
    """GET /metrics, /healthz (alive) and /readyz (every check of `readiness` passes) on `app`."""

    @app.get("/metrics")
    def metrics_endpoint():
        return metrics.exposition()

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", workers=workers)  # liveness only: the database is /readyz's

    @app.get("/readyz")
    def readyz():
        reasons = readiness.reasons()
        if reasons:
            first = next(iter(reasons.values()))
            return jsonify(status="unavailable", reason=first, reasons=reasons), 503
        return jsonify(status="ready")


def probe_app(store: JobStore, metrics: Metrics, readiness: Readiness) -> Flask:
    """The probes alone, for `rlm worker` (which serves no webhooks)."""
    app = Flask("rlm-worker")
    mount_probes(app, store, metrics, workers=True, readiness=readiness)
    return app
