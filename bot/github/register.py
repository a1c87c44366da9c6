"""`rlm app register`: create the GitHub App from a manifest in one step.

A page on 127.0.0.1 holds a form whose hidden `manifest` field (name, webhook URL, the permissions
and events in docs/github-app.md) is posted to GitHub — or a GitHub Enterprise Server. GitHub asks
the user to confirm, creates the App and redirects back to the page with a one-time `code` (and the
`state` the page sent, checked here); the code is exchanged (`POST /app-manifests/{code}/conversions`)
for the App's id, private key and webhook secret, which are written to an env file readable by its
owner only (0600).

The page answers only requests addressed to the loopback name and port it bound (a foreign `Host`
is a DNS-rebinding page or a proxy), opens only with the one-time `start` token of the URL printed
on the terminal, and binds the flow to the browser that opened it: a random cookie set then is
required (compared in constant time) before the form, which carries `state`, is shown again or the
callback is accepted. Every value written to the env file is checked against what GitHub sends
(a number, a PEM key, a plain secret) and written in a form any .env loader reads back unchanged,
so an answer holding a newline or a quote can never add a variable.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import os
import re
import secrets
import threading
import webbrowser
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import requests

from bot.common.secrets import REDACTOR

log = logging.getLogger(__name__)

PERMISSIONS = {
    "contents": "write",
    "issues": "write",
    "pull_requests": "write",
    "checks": "write",
    "metadata": "read",
}
# `issues` and `pull_request` carry labels and assignments (.github/rlm.yml `triggers:`).
EVENTS = ["issue_comment", "pull_request_review_comment", "issues", "pull_request"]

OPEN_PAGE = (
    "Open {url} in a browser on this machine to create the GitHub App (waiting up to {minutes} minutes)."
)
OUTPUT_EXISTS = "{path} already exists; move it away or choose another file with --output."
PORT_BUSY = (
    "cannot serve the page on 127.0.0.1:{port} ({reason}); choose another --port, or 0 for a free one."
)
OUTPUT_DIR_MISSING = "{path} is not a directory; create it or choose another file with --output."
NOT_WRITTEN = (
    "the App {name} was created on GitHub, but its settings could not be written to {path} ({reason}); "
    "on the App's settings page generate a new private key and set a webhook secret by hand."
)
BAD_WEBHOOK_URL = (
    "the webhook URL must be an http(s) URL ending in /webhook, e.g. https://rlm.example.com/webhook."
)
TIMED_OUT = "GitHub did not send the App back within {minutes} minutes; run `rlm app register` again."
STATE_MISMATCH = (
    "the answer from GitHub did not carry this page's state; it was ignored. Start again from the page."
)
CONVERSION_FAILED = "GitHub could not turn the code into an App ({detail}); codes expire after an hour, so run `rlm app register` again."
DONE_PAGE = "The GitHub App {name} was created. Its settings are in {path}; you can close this tab."
FAILED_PAGE = "Creating the App failed: {reason}"
WRONG_HOST = "this page answers only at {page}; open that address."
NOT_YOUR_FLOW = (
    "this registration belongs to the browser that opened the page first (or the link printed on "
    "the terminal); open that link, or run `rlm app register` again."
)
BAD_VALUE = "GitHub's answer holds a {field} that is not one (it was not written)"
COOKIE = "rlm_register"


class RegisterError(Exception):
    """A sentence the user can act on."""


@dataclass
class Registration:
    app_id: int
    slug: str
    html_url: str
    env_path: Path


def api_url_for(github_url: str) -> str:
    """github.com's API is api.github.com; a GitHub Enterprise Server's is <server>/api/v3."""
    base = github_url.rstrip("/")
    host = urlsplit(base).hostname or ""
    return "https://api.github.com" if host in ("github.com", "www.github.com") else f"{base}/api/v3"


def manifest(name: str, webhook_url: str, redirect_url: str, *, public: bool = False) -> dict:
    parts = urlsplit(webhook_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.endswith("/webhook"):
        raise RegisterError(BAD_WEBHOOK_URL)
    return {
        "name": name,
        "url": f"{parts.scheme}://{parts.netloc}/",
        "hook_attributes": {"url": webhook_url, "active": True},
        "redirect_url": redirect_url,
        "public": public,
        "default_permissions": dict(PERMISSIONS),
        "default_events": list(EVENTS),
    }


def form_page(action: str, manifest_json: str) -> str:
    m = json.loads(manifest_json)
    facts = {
        "App name": m["name"],
        "Webhook URL": m["hook_attributes"]["url"],
        "Permissions": ", ".join(f"{k}: {v}" for k, v in m["default_permissions"].items()),
        "Events": ", ".join(m["default_events"]),
        "Created on": action.split("?", 1)[0],
    }
    rows = "".join(
        f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts.items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Register the rlm-bot GitHub App</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>Register the rlm-bot GitHub App</h1>
<p>GitHub will show the App's name, permissions and events and ask you to confirm. Its private key
and webhook secret come back to this machine only.</p>
<table cellpadding="4">{rows}</table>
<form id="register" action="{html.escape(action)}" method="post">
<input type="hidden" name="manifest" value="{html.escape(manifest_json)}">
<button type="submit">Create the App on GitHub</button>
</form></body></html>"""


_APP_ID = re.compile(r"[1-9][0-9]{0,19}")
_PEM = re.compile(r"-----BEGIN [A-Z ]{1,40}-----\n[A-Za-z0-9+/=\n]{1,20000}\n-----END [A-Z ]{1,40}-----")
_SECRET = re.compile(r"[A-Za-z0-9_.~+/=-]{1,512}")
_URL = re.compile(r"https?://[A-Za-z0-9._~:/?&=%+@\[\]-]{1,2000}")


def _checked(conversion: dict, api_url: str) -> dict[str, str]:
    """The env file's variables from GitHub's answer, each checked to be what it claims: nothing in
    them can end a line or a quote (RegisterError naming the field otherwise)."""
    app_id = str(conversion["id"])
    pem = str(conversion["pem"]).replace("\r\n", "\n").strip()
    secret = str(conversion["webhook_secret"])
    for field, value, shape in (
        ("App id", app_id, _APP_ID),
        ("private key", pem, _PEM),
        ("webhook secret", secret, _SECRET),
        ("API URL", api_url, _URL),
    ):
        if not shape.fullmatch(value):
            raise RegisterError(BAD_VALUE.format(field=field))
    values = {
        "GITHUB_APP_ID": app_id,
        "GITHUB_PRIVATE_KEY": pem.replace("\n", "\\n") + "\\n",  # one line; auth.py turns \n back
        "GITHUB_WEBHOOK_SECRET": secret,
    }
    if api_url != "https://api.github.com":
        values["GITHUB_API_URL"] = api_url
    return values


def env_text(values: dict[str, str]) -> str:
    """KEY="value" lines the project's .env reader (python-dotenv) reads back to exactly `values` (the
    values hold no quote, `$`, `#`, whitespace or line break: _checked made sure)."""
    lines = ["# Written by `rlm app register`. Keep it secret: it holds the App's private key."]
    lines += [f'{key}="{value}"' for key, value in values.items()]
    return "\n".join(lines) + "\n"


def write_env(path: Path, conversion: dict, api_url: str) -> None:
    """The App's settings as an env file, created with mode 0600 (never overwriting a file)."""
    text = env_text(_checked(conversion, api_url))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def convert(api_url: str, code: str, timeout: float = 30) -> dict:
    """Exchange the one-time code for the App (no authentication: the code is the credential)."""
    try:
        resp = requests.post(
            f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions",
            headers={"Accept": "application/vnd.github+json"},
            timeout=timeout,
        )
    except requests.RequestException as e:
        raise RegisterError(CONVERSION_FAILED.format(detail=type(e).__name__)) from None
    if resp.status_code != 201:
        raise RegisterError(CONVERSION_FAILED.format(detail=f"HTTP {resp.status_code}"))
    try:
        data = resp.json()
    except ValueError:
        raise RegisterError(CONVERSION_FAILED.format(detail="an answer that is not JSON")) from None
    if not isinstance(data, dict):
        raise RegisterError(CONVERSION_FAILED.format(detail="an answer that is not an App"))
    REDACTOR.add(data.get("pem"), data.get("webhook_secret"), data.get("client_secret"))
    return data


class _Flow:
    def __init__(
        self,
        *,
        action: str,
        manifest_json: str,
        state: str,
        api_url: str,
        output: Path,
        host: str,
        start: str,
    ):
        self.action, self.manifest_json, self.state, self.api_url, self.output = (
            action,
            manifest_json,
            state,
            api_url,
            output,
        )
        self.host = host  # the only Host header answered: 127.0.0.1:<port>
        self.start = start  # the one-time token of the printed link
        self.browser: str | None = None  # the cookie of the browser that opened the page
        self._lock = threading.Lock()
        self.done = threading.Event()
        self.result: Registration | None = None
        self.error: RegisterError | None = None

    def open_page(self, query: dict[str, list[str]], cookie: str | None) -> str | None:
        """The cookie to set when this request may see the form (None: it may not). The first
        request bearing the start token binds the flow to its browser; later ones need its cookie."""
        with self._lock:
            if self.browser is None:
                if not hmac.compare_digest((query.get("start") or [""])[0], self.start):
                    return None
                self.browser = secrets.token_urlsafe(32)
                return self.browser
            return self.browser if self.owns(cookie) else None

    def owns(self, cookie: str | None) -> bool:
        return self.browser is not None and hmac.compare_digest(cookie or "", self.browser)

    def callback(self, query: dict[str, list[str]], cookie: str | None) -> tuple[int, str]:
        if not self.owns(cookie):
            return 403, NOT_YOUR_FLOW
        if not hmac.compare_digest((query.get("state") or [""])[0], self.state):
            return 400, STATE_MISMATCH
        if self.done.is_set():
            return 409, FAILED_PAGE.format(reason="this page already finished")
        try:
            data = convert(self.api_url, (query.get("code") or [""])[0])
            try:
                write_env(self.output, data, self.api_url)
            except (OSError, KeyError, RegisterError) as e:  # the code is spent: say so, do not hang
                reason = (
                    str(e)
                    if isinstance(e, RegisterError)
                    else getattr(e, "strerror", None) or f"GitHub's answer lacks {e}"
                )
                raise RegisterError(
                    NOT_WRITTEN.format(
                        name=data.get("slug") or data.get("name") or "", path=self.output, reason=reason
                    )
                ) from None
            self.result = Registration(
                int(data["id"]), str(data.get("slug") or ""), str(data.get("html_url") or ""), self.output
            )
            body = DONE_PAGE.format(name=data.get("name") or data.get("slug"), path=self.output)
            status = 200
        except RegisterError as e:
            self.error, status, body = e, 502, FAILED_PAGE.format(reason=e)
        self.done.set()
        return status, body


def _handler(flow: _Flow) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args) -> None:  # the callback's URL holds the one-time code
            log.debug("register page: %s", self.command)

        def _send(
            self,
            status: int,
            body: str,
            content_type: str = "text/html; charset=utf-8",
            cookie: str | None = None,
        ) -> None:
            data = body.encode()
            self.send_response(status)
            if cookie is not None:
                self.send_header("Set-Cookie", f"{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Lax")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _cookie(self) -> str | None:
            try:
                jar = SimpleCookie(self.headers.get("Cookie") or "")
            except CookieError:
                return None
            return jar[COOKIE].value if COOKIE in jar else None

        def _page(self, status: int, text: str, cookie: str | None = None) -> None:
            data = f"<!doctype html><p>{html.escape(text)}</p>"
            return self._send(status, data, cookie=cookie)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if not hmac.compare_digest(self.headers.get("Host") or "", flow.host):
                return self._send(421, WRONG_HOST.format(page=f"http://{flow.host}/"), "text/plain")
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if parts.path == "/":
                cookie = flow.open_page(query, self._cookie())
                if cookie is None:
                    return self._page(403, NOT_YOUR_FLOW)
                return self._send(200, form_page(flow.action, flow.manifest_json), cookie=cookie)
            if parts.path == "/callback":
                status, text = flow.callback(query, self._cookie())
                return self._page(status, text)
            return self._send(404, "not found", "text/plain")

    return Handler


def register(
    *,
    webhook_url: str,
    name: str = "rlm-bot",
    github_url: str = "https://github.com",
    org: str | None = None,
    output: Path = Path("app.env"),
    port: int = 0,
    open_browser: bool = True,
    public: bool = False,
    api_url: str | None = None,
    timeout: float = 600,
    on_ready=None,
) -> Path:
    """Serve the page on 127.0.0.1 until GitHub sends the App back; returns the env file's path.
    `on_ready(url)` is told the page's URL (tests drive the flow from there)."""
    output = Path(output)
    manifest(
        name, webhook_url, "http://127.0.0.1/callback"
    )  # refuses a bad webhook URL before anything starts
    if output.exists():
        raise RegisterError(OUTPUT_EXISTS.format(path=output))
    if not output.absolute().parent.is_dir():  # found out after GitHub made the App, its key would be lost
        raise RegisterError(OUTPUT_DIR_MISSING.format(path=output.absolute().parent))
    github_url = github_url.rstrip("/")
    api_url = (api_url or api_url_for(github_url)).rstrip("/")
    state, start = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), BaseHTTPRequestHandler)
    except OSError as e:
        raise RegisterError(PORT_BUSY.format(port=port, reason=e.strerror or e)) from None
    host = f"127.0.0.1:{server.server_port}"
    page = f"http://{host}"
    target = (
        f"{github_url}/organizations/{quote(org)}/settings/apps/new"
        if org
        else f"{github_url}/settings/apps/new"
    )
    flow = _Flow(
        action=f"{target}?state={state}",
        state=state,
        api_url=api_url,
        output=output,
        manifest_json=json.dumps(manifest(name, webhook_url, f"{page}/callback", public=public)),
        host=host,
        start=start,
    )
    link = f"{page}/?start={start}"
    server.RequestHandlerClass = _handler(flow)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        print(OPEN_PAGE.format(url=link, minutes=round(timeout / 60)), flush=True)
        if on_ready is not None:
            on_ready(link)
        elif open_browser:
            webbrowser.open(link)
        if not flow.done.wait(timeout):
            raise RegisterError(TIMED_OUT.format(minutes=round(timeout / 60)))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    if flow.error is not None:
        raise flow.error
    assert flow.result is not None
    return flow.result.env_path
