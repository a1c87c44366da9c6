"""GitHub App authentication: settings from the environment, the app JWT, installation tokens.

The JWT is RS256, issued 60 s in the past (GitHub's clock may be behind ours) and valid for at most
10 minutes. Installation tokens last an hour; we cache each until a few minutes before it expires.
Every key and token is registered with the redactor the moment we hold it.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization

from bot.rlm.secrets import REDACTOR

from .api import DEFAULT_API_URL, GitHubAPI, GitHubError

JWT_BACKDATE = 60
JWT_LIFETIME = 540  # iat is 60 s back, so exp is 9 min after iat + 1 = within GitHub's 10 min
TOKEN_MARGIN = 300  # refresh an installation token this long before it expires


class AppSettingsError(Exception):
    """The App's environment is incomplete; the message says which variable to set."""


@dataclass(frozen=True)
class AppSettings:
    app_id: str
    private_key: str = field(repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AppSettings:
        env = os.environ if environ is None else environ
        app_id = (env.get("GITHUB_APP_ID") or "").strip()
        if not app_id:
            raise AppSettingsError("GITHUB_APP_ID is not set; it is the App ID on the app's settings page.")
        key = env.get("GITHUB_PRIVATE_KEY") or ""
        path = env.get("GITHUB_PRIVATE_KEY_PATH")
        if not key and path:
            try:
                key = Path(path).read_text(encoding="utf-8")
            except OSError as e:
                raise AppSettingsError(
                    f"GITHUB_PRIVATE_KEY_PATH {path} cannot be read: {e.strerror}."
                ) from None
        if not key.strip():
            raise AppSettingsError(
                "set GITHUB_PRIVATE_KEY (the PEM text) or GITHUB_PRIVATE_KEY_PATH (a .pem file) "
                "to the app's private key."
            )
        key = key.replace("\\n", "\n").strip() + "\n"
        try:
            serialization.load_pem_private_key(key.encode(), password=None)
        except (ValueError, TypeError):
            raise AppSettingsError(
                "the app's private key is not a PEM private key; paste the whole .pem file GitHub generated "
                "into GITHUB_PRIVATE_KEY or point GITHUB_PRIVATE_KEY_PATH at it."
            ) from None
        secret = env.get("GITHUB_WEBHOOK_SECRET") or None
        REDACTOR.add(key, secret)
        api_url = (env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
        return cls(app_id=app_id, private_key=key, webhook_secret=secret, api_url=api_url)


def _expiry(value: str | None, now: float) -> float:
    if not value:
        return now + 3600
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class AppAuth:
    """Mints the app JWT and caches installation tokens (thread-safe)."""

    def __init__(self, settings: AppSettings, *, clock: Callable[[], float] = time.time,
                 api_factory: Callable[..., GitHubAPI] = GitHubAPI):  # fmt: skip
        self.settings = settings
        self.clock = clock
        self._api_factory = api_factory
        self._lock = threading.Lock()
        self._tokens: dict[int, tuple[str, float]] = {}
        self._key = None  # the parsed key: loading (and checking) an RSA key costs tens of ms

    def _signing_key(self):
        if self._key is None:
            try:
                self._key = serialization.load_pem_private_key(
                    self.settings.private_key.encode(), password=None
                )
            except (ValueError, TypeError) as e:
                raise AppSettingsError(
                    f"the app's private key cannot be loaded ({e}); check GITHUB_PRIVATE_KEY."
                ) from None
        return self._key

    def jwt(self) -> str:
        now = int(self.clock())
        claims = {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME, "iss": str(self.settings.app_id)}
        try:
            token = jwt.encode(claims, self._signing_key(), algorithm="RS256")
        except (ValueError, TypeError) as e:
            raise AppSettingsError(
                f"the app's private key cannot sign a JWT ({e}); check GITHUB_PRIVATE_KEY."
            ) from None
        REDACTOR.add(token)
        return token

    def app_api(self) -> GitHubAPI:
        return self._api_factory(self.jwt(), self.settings.api_url, bearer=True)

    def installation_token(self, installation_id: int) -> str:
        now = self.clock()
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached and cached[1] - TOKEN_MARGIN > now:
                return cached[0]
        data = self.app_api().request("POST", f"/app/installations/{int(installation_id)}/access_tokens")
        if not isinstance(data, dict) or not data.get("token"):
            raise GitHubError("GitHub returned no installation token; check that the app is installed.")
        token = data["token"]
        REDACTOR.add(token)
        with self._lock:
            self._tokens[installation_id] = (token, _expiry(data.get("expires_at"), now))
        return token

    def installation_api(self, installation_id: int, **kwargs) -> GitHubAPI:
        """An API client for the installation that renews its token as it nears expiry."""
        return self._api_factory(self.installation_token(installation_id), self.settings.api_url,
                                 refresh=lambda: self.installation_token(installation_id), **kwargs)  # fmt: skip


def basic_auth_header(token: str) -> str:
    """The HTTP header git sends to clone with an installation token (handed to git via env only)."""
    encoded = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    REDACTOR.add(encoded)
    return f"Authorization: Basic {encoded}"
