"""The routers on their own, bedevere-style: small sansio.Events dispatched, decisions asserted;
plus the log filter that keeps secrets out of every log line."""

from __future__ import annotations

import asyncio
import logging

import pytest
from gidgethub import sansio

from bot.common.logging import RedactingFilter
from bot.common.secrets import REDACTOR
from bot.jobs import NewJob
from tests.fakes.github_app import comment_payload, review_comment_payload
from webhooks import context
from webhooks.context import Delivery
from webhooks.routing import router


def dispatch(event: str, payload: dict, app_id: str | None = "1") -> Delivery:
    delivery = Delivery(prefix="/rlm", installation_id=42, app_id=app_id)
    asyncio.run(router.dispatch(sansio.Event(payload, event=event, delivery_id="d"), delivery))
    return delivery


def test_issue_comment_command_becomes_a_job():
    delivery = dispatch("issue_comment", comment_payload("/rlm fix it\nplease", number=3, pull=True))
    assert delivery.ignored is None
    job = delivery.job
    assert isinstance(job, NewJob) and (job.kind, job.repo, job.number, job.installation_id) == (
        "run",
        "octo/demo",
        3,
        42,
    )
    assert (
        job.request["task"] == "fix it\nplease"
        and job.request["is_pull"]
        and not job.request["review_comment"]
    )


def test_review_comment_command_becomes_a_job():
    delivery = dispatch("pull_request_review_comment", review_comment_payload("/rlm status"))
    assert delivery.job.kind == "status" and delivery.job.request["review_comment"]


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_edits_and_deletes_have_no_handler(action):
    payload = comment_payload("/rlm fix it")
    payload["action"] = action
    delivery = dispatch("issue_comment", payload)
    assert delivery.job is None and delivery.ignored is None  # the entry reports IGNORED_NO_HANDLER


def test_bots_and_own_comments_and_plain_comments_are_ignored():
    assert (
        dispatch("issue_comment", comment_payload("/rlm x", user_type="Bot")).ignored == context.IGNORED_BOT
    )
    own = comment_payload("/rlm x")
    own["comment"]["performed_via_github_app"] = {"id": 1}
    assert dispatch("issue_comment", own).ignored == context.IGNORED_OWN
    plain = dispatch("issue_comment", comment_payload("thanks!"))
    assert plain.ignored == context.IGNORED_NO_COMMAND.format(prefix="/rlm")


def test_log_lines_are_redacted(caplog):
    REDACTOR.add("planted-log-secret-77aa")
    logger = logging.getLogger("test.redaction")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO):
        logger.info("token is %s", "planted-log-secret-77aa")
    assert "planted-log-secret-77aa" not in caplog.text and "[REDACTED]" in caplog.text


def test_tracebacks_in_log_lines_are_redacted(caplog):
    """An exception's text reaches the log with its traceback (plain and JSON lines alike)."""
    from bot.common.logcontext import JsonFormatter

    REDACTOR.add("planted-traceback-secret-91bb")
    logger = logging.getLogger("test.redaction")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO):
        try:
            raise RuntimeError("GitHub said: planted-traceback-secret-91bb")
        except RuntimeError:
            logger.exception("a job failed")
    (record,) = [r for r in caplog.records if r.name == "test.redaction"]
    plain = logging.Formatter().format(record)
    assert "a job failed" in plain and "RuntimeError" in plain and "[REDACTED]" in plain
    assert "planted-traceback-secret-91bb" not in plain + caplog.text + JsonFormatter().format(record)
