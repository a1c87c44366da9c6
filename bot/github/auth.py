"""GitHub App authentication: settings from the environment, then PyGithub's own App auth.

The JWT is RS256, issued 60 s in the past (GitHub's clock may be behind ours) and valid for at most
10 minutes (`github.Auth.AppAuth`). Installation tokens last an hour; `AppInstallationAuth` fetches
one when first needed and renews it shortly before it expires. Every key and token is registered
with the redactor the moment we hold it.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from github import Auth, Github, GithubException

from bot.common.secrets import REDACTOR

from .api import DEFAULT_API_URL, GitHubAPI, GitHubError

JWT_BACKDATE = 60
JWT_LIFETIME = 540  # iat is 60 s back, so exp is 9 min after iat + 1 = within GitHub's 10 min


class AppSettingsError(Exception):
    """The App's environment is incomplete; the message says which variable to set."""


@dataclass(frozen=True)
class AppSettings:
    app_id: str
    private_key: str = field(repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AppSettings:
        """From the App's settings as read by webhooks/settings.py (the App's one environment reader)."""
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


class _InstallationAuth(Auth.AppInstallationAuth):
    """PyGithub's installation auth (it fetches the token and renews it before it expires), with
    every token it holds registered with the redactor."""

    _last = ""

    @property
    def token(self) -> str:
        token = super().token
        if token != self._last:
            REDACTOR.add(token)
            self._last = token
        return token


class AppAuth:
    """The App's identity, on PyGithub's own `Auth.AppAuth` (JWT) and `AppInstallationAuth`
    (installation tokens, renewed as they near expiry). One auth per installation, shared by
    every client of that installation (thread-safe enough: a race fetches one extra token)."""

    def __init__(self, settings: AppSettings, *, api_factory: Callable[..., GitHubAPI] = GitHubAPI):
        self.settings = settings
        self._api_factory = api_factory
        self._app = Auth.AppAuth(
            settings.app_id, settings.private_key, jwt_expiry=JWT_LIFETIME, jwt_issued_at=-JWT_BACKDATE
        )
        self._lock = threading.Lock()
        self._installations: dict[int, tuple[_InstallationAuth, Github]] = {}

    def jwt(self) -> str:
        try:
            token = self._app.create_jwt()
        except (ValueError, TypeError) as e:
            raise AppSettingsError(
                f"the app's private key cannot sign a JWT ({e}); check GITHUB_PRIVATE_KEY."
            ) from None
        REDACTOR.add(token)
        return token

    def app_api(self) -> GitHubAPI:
        return self._api_factory(self.jwt(), self.settings.api_url, bearer=True)

    def installation_auth(self, installation_id: int) -> _InstallationAuth:
        with self._lock:
            if installation_id not in self._installations:
                auth = _InstallationAuth(self._app, int(installation_id))
                # The Github object binds the auth to a requester for our API URL (token fetches).
                self._installations[installation_id] = (
                    auth,
                    Github(auth=auth, base_url=self.settings.api_url, retry=None, user_agent="rlm-bot"),
                )
            return self._installations[installation_id][0]

    def installation_token(self, installation_id: int) -> str:
        try:
            return self.installation_auth(installation_id).token
        except GithubException as e:
            raise GitHubError(
                f"GitHub gave no installation token ({e.status}); check that the app is installed.",
                status=e.status,
            ) from None

    def installation_api(self, installation_id: int, **kwargs) -> GitHubAPI:
        """An API client for the installation; its token renews itself as it nears expiry."""
        return self._api_factory(self.installation_auth(installation_id), self.settings.api_url, **kwargs)


def basic_auth_header(token: str) -> str:
    """The HTTP header git sends to clone with an installation token (handed to git via env only)."""
    encoded = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    REDACTOR.add(encoded)
    return f"Authorization: Basic {encoded}"
