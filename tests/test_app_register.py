"""`rlm app register` against the fake GitHub: the local page's form posts the manifest, GitHub's
redirect brings the code back, the code becomes an App, and its settings land in a 0600 env file
that `rlm serve` can load."""

from __future__ import annotations

import json
import re
import stat
import threading
from html import unescape

import pytest
import requests

from bot.common.envfile import read_env_file
from bot.github import register as reg
from bot.github.auth import AppSettings
from tests.fakes.github_fake import FakeGitHub


@pytest.fixture
def fake():
    f = FakeGitHub(prefix="/api/v3").start()  # a GitHub Enterprise Server: web at /, API at /api/v3
    yield f
    f.stop()


def drive(fake: FakeGitHub, tmp_path, *, tamper_state: bool = False, **kwargs):
    """Run `register` in a thread and act as the user's browser."""
    web = fake.url.removesuffix("/api/v3")
    ready: list[str] = []
    got = threading.Event()
    result: dict = {}

    def run() -> None:
        try:
            result["path"] = reg.register(
                webhook_url="https://rlm.example.com/webhook",
                name="rlm-test",
                github_url=web,
                output=tmp_path / "app.env",
                timeout=20,
                on_ready=lambda url: (ready.append(url), got.set()),
                **kwargs,
            )
        except reg.RegisterError as e:
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    assert got.wait(10)
    browser = requests.Session()  # the page binds the flow to this browser's cookie
    page = browser.get(ready[0], timeout=5)
    action = unescape(re.search(r'action="([^"]+)"', page.text).group(1))
    manifest = unescape(re.search(r'name="manifest" value="([^"]+)"', page.text).group(1))
    if tamper_state:
        action = re.sub(r"state=[^&]+", "state=forged", action)
    # The browser posts the form to GitHub, which redirects back to the local page.
    final = browser.post(action, data={"manifest": manifest}, timeout=10)
    if tamper_state:  # the forged answer is refused; the real one still works afterwards
        assert final.status_code == 400 and reg.STATE_MISMATCH in unescape(final.text)
        final = browser.post(
            re.sub(r"state=forged", f"state={action_state(page.text)}", action),
            data={"manifest": manifest},
            timeout=10,
        )
    thread.join(20)
    return final, json.loads(manifest), result, action


def action_state(page: str) -> str:
    return re.search(r"state=([^\"&]+)", unescape(page)).group(1)


def test_register_writes_a_private_env_file_the_server_can_load(fake, tmp_path):
    final, manifest, result, action = drive(fake, tmp_path)
    assert final.status_code == 200, final.text
    assert "rlm-test" in final.text and "close this tab" in final.text
    assert "error" not in result, result
    path = result["path"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert action.startswith(f"{fake.url.removesuffix('/api/v3')}/settings/apps/new?state=")
    assert manifest["hook_attributes"] == {"url": "https://rlm.example.com/webhook", "active": True}
    assert manifest["default_permissions"] == {
        "contents": "write",
        "issues": "write",
        "pull_requests": "write",
        "checks": "write",
        "metadata": "read",
    }
    assert manifest["default_events"] == [
        "issue_comment",
        "pull_request_review_comment",
        "issues",
        "pull_request",
    ]
    assert manifest["redirect_url"].startswith("http://127.0.0.1:")
    settings = AppSettings.from_env(read_env_file(path))
    assert (settings.app_id, settings.webhook_secret) == ("4242", "whsec-from-fake-github-0123456789")
    assert settings.api_url == fake.url
    assert settings.private_key.startswith("-----BEGIN")
    conversions = [c for c in fake.calls if c.path.startswith("/app-manifests/")]
    assert [(c.method, c.auth) for c in conversions] == [("POST", "")]  # the code is the only credential


def test_a_forged_state_is_refused(fake, tmp_path):
    final, _, result, _ = drive(fake, tmp_path, tamper_state=True)
    assert final.status_code == 200 and result["path"].exists()


def test_org_apps_and_refusals(fake, tmp_path):
    final, _, result, action = drive(fake, tmp_path, org="octo-org")
    assert "/organizations/octo-org/settings/apps/new?state=" in action and final.status_code == 200
    with pytest.raises(reg.RegisterError, match="already exists"):
        reg.register(
            webhook_url="https://x.example/webhook", output=result["path"], open_browser=False, timeout=1
        )
    with pytest.raises(reg.RegisterError) as e:
        reg.register(
            webhook_url="ftp://x.example/hook", output=tmp_path / "o.env", open_browser=False, timeout=1
        )
    assert str(e.value) == reg.BAD_WEBHOOK_URL


def test_an_expired_code_is_a_clear_error(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(fake, "manifests", _Forgetful())
    final, _, result, _ = drive(fake, tmp_path)
    assert final.status_code == 502
    assert str(result["error"]) == reg.CONVERSION_FAILED.format(detail="HTTP 404")
    assert not (tmp_path / "app.env").exists()


def test_api_url_for():
    assert reg.api_url_for("https://github.com") == "https://api.github.com"
    assert reg.api_url_for("https://ghe.example.com/") == "https://ghe.example.com/api/v3"


class _Forgetful(dict):
    def __setitem__(self, key, value) -> None:  # GitHub forgot the code (it expired)
        pass


def test_an_output_directory_that_does_not_exist_is_refused_before_github_is_asked(tmp_path):
    with pytest.raises(reg.RegisterError) as e:
        reg.register(
            webhook_url="https://rlm.example.com/webhook",
            output=tmp_path / "missing" / "app.env",
            open_browser=False,
            timeout=5,
        )
    assert str(e.value) == reg.OUTPUT_DIR_MISSING.format(path=tmp_path / "missing")


def test_settings_that_cannot_be_written_end_the_flow_with_the_reason(fake, tmp_path, monkeypatch):
    """The App exists on GitHub once the code is converted: a failed write is said at once (the
    page and the command), not left as a dead request and a 10-minute wait."""
    real_write = reg.write_env

    def write_then_fail(path, conversion, api_url):
        path.write_text("taken meanwhile")  # e.g. another process created the file after the check
        real_write(path, conversion, api_url)

    monkeypatch.setattr(reg, "write_env", write_then_fail)
    final, _, result, _ = drive(fake, tmp_path)
    assert final.status_code == 502 and "generate a new private key" in unescape(final.text)
    assert "generate a new private key" in str(result["error"]) and "File exists" in str(result["error"])


def test_a_busy_port_is_one_sentence(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(reg.RegisterError) as e:
            reg.register(
                webhook_url="https://rlm.example.com/webhook",
                output=tmp_path / "app.env",
                port=port,
                open_browser=False,
                timeout=5,
            )
    assert str(e.value).startswith(f"cannot serve the page on 127.0.0.1:{port}")
