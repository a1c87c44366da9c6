"""The App's intake (the Flask entry): verify, parse, route, record, answer — in milliseconds,
whatever a run costs. Routes live one module per event (issue_comment.py, review_comment.py);
jobs are run by the worker pool (worker.py) through the job handler (handler.py).

POST /webhook: the signature (X-Hub-Signature-256) is checked first, in constant time, through
gidgethub's sans-I/O layer; without a configured secret every delivery is refused. Every bad input
gets a 4xx with a one-line reason; only a bug gives a 500. GET /healthz, /readyz and /metrics for
probes and Prometheus (observability.py). Traces are served under /runs/<token>/ by the viewer's
blueprint.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, jsonify, request
from gidgethub import ValidationFailure, sansio
from werkzeug.exceptions import HTTPException

from bot.common.logcontext import bind
from bot.jobs import DuplicateDelivery, JobHandler, JobStore, WorkerPool, open_store

from .context import IGNORED_NO_HANDLER, Delivery
from .kinds import busy_instead, request_of
from .observability import Metrics, mount_probes
from .payload import PayloadError, parse_payload
from .readiness import Readiness
from .routing import KNOWN_EVENTS, router
from .settings import ServerConfig
from .worker import start_pool

log = logging.getLogger(__name__)

NO_SECRET = "no webhook secret is configured on this server, so every delivery is refused"
NO_SIGNATURE = "the X-Hub-Signature-256 header is missing"
BAD_SIGNATURE = "the X-Hub-Signature-256 signature does not match the payload"
NO_EVENT = "the X-GitHub-Event header is missing"
NO_DELIVERY = "the X-GitHub-Delivery header is missing"
BAD_CONTENT_TYPE = "the content type must be application/json"
UNKNOWN_EVENT = "this app does not handle {event} events"
NO_INSTALLATION = "the payload has no installation; deliveries must come from the installed GitHub App"
MISSING_FIELD = "the payload is missing a field this event needs: {field}"
REPLAYED = "delivery {delivery} was already received"
TOO_LARGE = "the body is larger than this server accepts ({limit} bytes)"
DB_DOWN = (
    "the job database is not answering, so nothing was recorded; redeliver this delivery once it is back"
)
PONG = "pong"
INTERNAL = "internal error; see the server log"


@dataclass
class Server:
    config: ServerConfig
    store: JobStore
    pool: WorkerPool | None
    metrics: Metrics | None = None


_local = threading.local()


def _loop() -> asyncio.AbstractEventLoop:
    """One event loop per HTTP thread for gidgethub's async router (asyncio.run per delivery
    would cost about as much as the rest of the request)."""
    loop = getattr(_local, "loop", None)
    if loop is None:
        loop = _local.loop = asyncio.new_event_loop()
    return loop


def refuse(status: int, reason: str) -> tuple[Response, int]:
    return jsonify(error=reason), status


def create_app(
    config: ServerConfig, *, start_workers: bool = True, handler: JobHandler | None = None
) -> Flask:
    """The webhook app. With `start_workers` and `config.workers` > 0, a worker pool in this process
    runs jobs with `handler` (default: the App's, which needs `config.app`); with `config.workers` 0
    it is intake only and `rlm worker` processes run the jobs."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body
    store = open_store(config.db_path, lease_seconds=config.lease_seconds)
    metrics = Metrics(store, Path(config.worker.results_dir))
    server = Server(config, store, None, metrics)
    if start_workers and config.workers > 0:
        server.pool = start_pool(config, store, handler=handler, on_done=metrics.job_done)
    app.extensions["rlm"] = server

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        if e.code == 413:
            return refuse(413, TOO_LARGE.format(limit=config.max_body))
        return refuse(e.code or 400, (e.description or e.name).splitlines()[0])

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        log.exception("unexpected error while handling %s %s", request.method, request.path)
        return refuse(500, INTERNAL)

    readiness = Readiness(config, store, runs_jobs=server.pool is not None, takes_deliveries=True).start()
    mount_probes(app, store, metrics, workers=server.pool is not None, readiness=readiness)

    @app.post("/webhook")
    def webhook():
        return observed_delivery(server)

    _mount_viewer(app, store, Path(config.worker.results_dir))
    return app


def observed_delivery(server: Server) -> tuple[Response, int]:
    """`handle_delivery` with the delivery id on its log lines and its decision counted."""
    with bind(delivery_id=request.headers.get("X-GitHub-Delivery")):
        response, status = handle_delivery(server)
        if server.metrics is not None:
            server.metrics.delivery(status)
        if status == 202:
            job = server.store.get(response.get_json().get("job"))
            if job is not None:
                with bind(job_id=job.id, repo=job.repo, issue=job.number):
                    log.info("queued %s job %s", job.kind, job.id)
        return response, status


def handle_delivery(server: Server) -> tuple[Response, int]:
    config = server.config
    if not config.webhook_secret:
        return refuse(403, NO_SECRET)
    body = request.get_data(cache=False)
    signature = request.headers.get("X-Hub-Signature-256")
    if not signature:
        return refuse(401, NO_SIGNATURE)
    if not signature.startswith("sha256="):  # the SHA-1 header is not accepted
        return refuse(401, BAD_SIGNATURE)
    try:
        sansio.validate_event(body, signature=signature, secret=config.webhook_secret)
    except ValidationFailure:
        return refuse(401, BAD_SIGNATURE)
    event_name = request.headers.get("X-GitHub-Event")
    delivery_id = request.headers.get("X-GitHub-Delivery")
    if not event_name:
        return refuse(400, NO_EVENT)
    if not delivery_id:
        return refuse(400, NO_DELIVERY)
    if request.mimetype != "application/json":
        return refuse(415, BAD_CONTENT_TYPE)
    try:
        data = parse_payload(body)
    except PayloadError as e:
        return refuse(400, str(e))
    if event_name == "ping":
        return jsonify(decision="ignored", reason=PONG), 200  # no installation needed
    if event_name not in KNOWN_EVENTS:
        return refuse(400, UNKNOWN_EVENT.format(event=event_name))
    installation = (
        (data.get("installation") or {}).get("id") if isinstance(data.get("installation"), dict) else None
    )
    if not isinstance(installation, int) or isinstance(installation, bool):
        return refuse(400, NO_INSTALLATION)
    delivery = Delivery(
        prefix=config.prefix, installation_id=installation, app_id=config.app.app_id if config.app else None
    )
    event = sansio.Event(data, event=event_name, delivery_id=delivery_id)
    try:
        _loop().run_until_complete(router.dispatch(event, delivery))
    except PayloadError as e:
        return refuse(400, str(e))
    except (KeyError, TypeError, AttributeError) as e:
        return refuse(400, MISSING_FIELD.format(field=e))
    reason = delivery.ignored or IGNORED_NO_HANDLER.format(event=event_name, action=data.get("action"))
    try:
        job = server.store.record_delivery(
            delivery_id, event_name, delivery.job, decision=reason, if_run_active=busy_instead
        )
    except DuplicateDelivery:
        return refuse(409, REPLAYED.format(delivery=delivery_id))
    except server.store.errors as e:  # the server is fine, its database is not: 503, not a bug's 500
        log.error("delivery %s not recorded: %s (%s)", delivery_id, DB_DOWN, type(e).__name__)
        return refuse(503, DB_DOWN)
    if job is None:
        return jsonify(decision="ignored", reason=reason), 200
    if server.pool is not None:
        server.pool.notify(job.lane)
    return jsonify(decision="queued", kind=job.kind, job=job.id), 202


def _mount_viewer(app: Flask, store: JobStore, results_dir: Path) -> None:
    from bot.viewer import viewer_blueprint

    def lookup(token: str) -> Path | None:
        job = store.by_trace_token(token)
        run_id = request_of(job).run_id if job else None
        return results_dir / f"{run_id}.json" if run_id else None

    app.register_blueprint(viewer_blueprint(lookup))
