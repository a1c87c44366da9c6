"""`rlm app register` against an attacker: a web page doing DNS rebinding (a foreign Host header),
another browser or local user racing for the flow (no cookie, a wrong cookie, the state stolen),
and a code-exchange answer built to inject variables into app.env. The fake GitHub plays GitHub."""

from __future__ import annotations

import re
import threading
from html import unescape

import pytest
import requests

from bot.common.envfile import read_env_file
from bot.github import register as reg
from bot.github.auth import AppSettings
from tests.fakes.github_fake import FakeGitHub

INJECTED = "RLM_SANDBOX__ISOLATION"


@pytest.fixture
def fake():
    f = FakeGitHub(prefix="/api/v3").start()
    yield f
    f.stop()


class Flow:
    """`register` running in a thread; `link` is what it printed for the user."""

    def __init__(self, fake: FakeGitHub, tmp_path):
        self.output = tmp_path / "app.env"
        self.result: dict = {}
        ready: list[str] = []
        got = threading.Event()

        def run() -> None:
            try:
                self.result["path"] = reg.register(
                    webhook_url="https://rlm.example.com/webhook",
                    name="rlm-test",
                    github_url=fake.url.removesuffix("/api/v3"),
                    output=self.output,
                    timeout=20,
                    on_ready=lambda url: (ready.append(url), got.set()),
                )
            except reg.RegisterError as e:
                self.result["error"] = e

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert got.wait(10)
        self.link = ready[0]
        self.origin = re.match(r"http://[^/]+", self.link).group(0)

    def complete(self, browser: requests.Session, page: requests.Response) -> requests.Response:
        """The browser posts the page's form to GitHub, which redirects back with a code."""
        action = unescape(re.search(r'action="([^"]+)"', page.text).group(1))
        manifest = unescape(re.search(r'name="manifest" value="([^"]+)"', page.text).group(1))
        final = browser.post(action, data={"manifest": manifest}, timeout=10)
        self.thread.join(20)
        return final


def conversions(fake: FakeGitHub) -> int:
    return len([c for c in fake.calls if c.path.startswith("/app-manifests/")])


def test_a_foreign_host_header_never_sees_the_page(fake, tmp_path):
    flow = Flow(fake, tmp_path)
    port = flow.origin.rsplit(":", 1)[1]
    for host in (f"rebind.attacker.example:{port}", "127.0.0.1", f"localhost:{port}", f"127.0.0.1:{port}0"):
        resp = requests.get(flow.link, headers={"Host": host}, timeout=5)
        assert resp.status_code == 421, host
        assert "state=" not in resp.text and "manifest" not in resp.text
        assert "Set-Cookie" not in resp.headers
    browser = requests.Session()
    final = flow.complete(browser, browser.get(flow.link, timeout=5))  # the real user is unaffected
    assert final.status_code == 200 and flow.output.exists()


def test_only_the_browser_that_opened_the_page_sees_state_or_completes_it(fake, tmp_path):
    flow = Flow(fake, tmp_path)
    bare = requests.get(flow.origin + "/", timeout=5)  # without the printed link's token
    assert bare.status_code == 403 and "state=" not in bare.text
    user = requests.Session()
    page = user.get(flow.link, timeout=5)
    assert page.status_code == 200 and reg.COOKIE in user.cookies
    assert "HttpOnly" in page.headers["Set-Cookie"] and "SameSite=Lax" in page.headers["Set-Cookie"]
    guessed = requests.Session()
    guessed.cookies.set(reg.COOKIE, "x" * 43)
    for other in (requests.Session(), guessed):  # the same link again, from elsewhere
        seen = other.get(flow.link, timeout=5)
        assert seen.status_code == 403 and "state=" not in seen.text
    assert user.get(flow.origin + "/", timeout=5).status_code == 200  # the cookie reopens it

    # An attacker who learned the state completes the callback with its own code, without the cookie.
    hijack = _post_form(requests.Session(), page)
    assert hijack.status_code == 403 and reg.NOT_YOUR_FLOW in unescape(hijack.text)
    wrong = requests.Session()
    wrong.cookies.set(reg.COOKIE, "not-the-cookie")
    assert _post_form(wrong, page).status_code == 403
    assert conversions(fake) == 0 and not flow.output.exists()  # nothing was spent or written
    final = flow.complete(user, page)
    assert final.status_code == 200, final.text
    assert "error" not in flow.result and flow.output.exists()


def _post_form(browser: requests.Session, page: requests.Response) -> requests.Response:
    action = unescape(re.search(r'action="([^"]+)"', page.text).group(1))
    manifest = unescape(re.search(r'name="manifest" value="([^"]+)"', page.text).group(1))
    return browser.post(action, data={"manifest": manifest}, timeout=10)


@pytest.mark.parametrize(
    "field, value",
    [
        ("id", f"4242\n{INJECTED}=none"),
        ("webhook_secret", f"whsec-0123\n{INJECTED}=none"),
        ("webhook_secret", f'whsec" {INJECTED}=none #'),
        ("webhook_secret", "whsec-${HOME}"),
        ("pem", None),  # the real key, a quote and a line after it
    ],
)
def test_a_hostile_code_exchange_answer_adds_no_variable(fake, tmp_path, monkeypatch, field, value):
    route = fake._route

    def hostile(call):
        status, body = route(call)
        if call.path.startswith("/app-manifests/") and status == 201:
            body = dict(body)
            body[field] = value if value is not None else body["pem"] + f'"\n{INJECTED}=none\n'
        return status, body

    monkeypatch.setattr(fake, "_route", hostile)
    flow = Flow(fake, tmp_path)
    browser = requests.Session()
    final = flow.complete(browser, browser.get(flow.link, timeout=5))
    written = read_env_file(flow.output) if flow.output.exists() else {}
    assert INJECTED not in written and not any(v.endswith("none") for v in written.values())
    assert final.status_code == 502 and not flow.output.exists()
    assert "GitHub's answer holds a" in str(flow.result["error"])


def test_what_is_written_reads_back_exactly(fake, tmp_path):
    flow = Flow(fake, tmp_path)
    browser = requests.Session()
    assert flow.complete(browser, browser.get(flow.link, timeout=5)).status_code == 200
    values = read_env_file(flow.output)  # the project's .env reader (python-dotenv)
    assert set(values) == {"GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET", "GITHUB_API_URL"}
    settings = AppSettings.from_env(values)
    assert (settings.app_id, settings.webhook_secret) == ("4242", "whsec-from-fake-github-0123456789")
    assert settings.private_key.startswith("-----BEGIN") and settings.api_url == fake.url
