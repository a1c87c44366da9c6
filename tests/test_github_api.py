"""GitHubAPI against the fake GitHub over HTTP: calls, retries with backoff, clear final errors;
AppAuth: the JWT's claims and the installation-token cache."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from bot.common.secrets import REDACTOR
from bot.github.api import GitHubAPI, GitHubError
from bot.github.auth import JWT_BACKDATE, AppAuth, AppSettings, AppSettingsError, basic_auth_header
from bot.github.permissions import WRITE_PERMISSIONS, may_run
from tests.fakes.github_app import private_key_pem
from tests.fakes.github_fake import FakeGitHub

REPO = "octo/demo"


@pytest.fixture
def fake(tmp_path, make_repo):
    import subprocess

    work, _ = make_repo({"README.md": "# demo\n", ".github/rlm.yml": "rlm:\n  max_depth: 1\n"})
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    fake = FakeGitHub().start()
    fake.add_repo(REPO, str(bare))
    yield fake
    fake.stop()


def api_for(fake: FakeGitHub, sleeps: list | None = None, **kwargs) -> GitHubAPI:
    record = sleeps if sleeps is not None else []
    return GitHubAPI("test-token-abcdefgh", fake.url, sleep=record.append, **kwargs)


def test_reads(fake):
    api = api_for(fake)
    fake.grant(REPO, "alice", "maintain")
    assert api.get_permission(REPO, "alice") == "maintain"
    assert api.get_permission(REPO, "stranger") == "none"  # GitHub answers 404 for non-collaborators
    assert api.get_repo(REPO)["default_branch"] == "main"
    assert len(api.get_branch_sha(REPO, "main")) == 40
    assert api.get_file(REPO, ".github/rlm.yml", "main") == "rlm:\n  max_depth: 1\n"
    assert api.get_file(REPO, "missing.txt", "main") is None
    assert fake.calls[0].auth == "token test-token-abcdefgh"


def test_may_run(fake):
    api = api_for(fake)
    for role in ("admin", "maintain", "write", "triage", "read"):
        fake.grant(REPO, f"u-{role}", role)
        assert may_run(api, REPO, f"u-{role}") == (role in WRITE_PERMISSIONS)
    assert not may_run(api, REPO, "nobody")


def test_writes_are_redacted(fake):
    REDACTOR.add("planted-secret-value-123")
    api = api_for(fake)
    cid = api.create_comment(REPO, 1, "hello planted-secret-value-123")
    api.edit_comment(REPO, cid, "again planted-secret-value-123")
    assert "planted-secret-value-123" not in str([c.body for c in fake.calls])
    assert fake.comments[cid]["body"] == "again [REDACTED]"


@pytest.mark.parametrize(
    ("status", "headers", "message", "expected_wait"),
    [
        (502, {}, "Bad Gateway", 1.0),
        (503, {}, "Unavailable", 1.0),
        (429, {"Retry-After": "7"}, "Too many requests", 7.0),
        (
            403,
            {"Retry-After": "3"},
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            3.0,
        ),
    ],
)
def test_retried_with_backoff(fake, status, headers, message, expected_wait):
    sleeps: list[float] = []
    api = api_for(fake, sleeps)
    fake.fail(
        "POST", r"/repos/octo/demo/issues/\d+/comments", status, times=2, headers=headers, message=message
    )
    cid = api.create_comment(REPO, 3, "works in the end")
    assert fake.comments[cid]["body"] == "works in the end"
    assert len(sleeps) == 2
    if headers:
        assert sleeps == [expected_wait, expected_wait]
    else:
        assert expected_wait <= sleeps[0] < sleeps[1]  # exponential backoff
    posts = [c for c in fake.calls if c.method == "POST"]
    assert len(posts) == 3


def test_persistent_fault_gives_up_with_a_clear_error(fake):
    sleeps: list[float] = []
    api = api_for(fake, sleeps, max_tries=4)
    fake.fail("GET", r"/repos/octo/demo", 502, times=100)
    with pytest.raises(GitHubError) as info:
        api.get_repo(REPO)
    assert "kept failing" in str(info.value) and "after 4 tries" in str(info.value)
    assert len(sleeps) == 3
    assert len([c for c in fake.calls if c.path == "/repos/octo/demo"]) == 4


def test_not_retried_on_a_real_error(fake):
    sleeps: list[float] = []
    api = api_for(fake, sleeps)
    fake.fail("POST", r"/repos/octo/demo/pulls", 422, times=1, message="Validation Failed")
    with pytest.raises(GitHubError) as info:
        api.create_pull(REPO, title="t", head="h", base="main", body="b")
    assert info.value.status == 422 and "Validation Failed" in str(info.value)
    assert sleeps == []


def test_plain_403_is_not_retried(fake):
    sleeps: list[float] = []
    api = api_for(fake, sleeps)
    fake.fail("POST", r"/repos/octo/demo/git/refs", 403, message="Resource not accessible by integration")
    with pytest.raises(GitHubError):
        api.create_ref(REPO, "refs/heads/x", "0" * 40)
    assert sleeps == []


def test_retry_after_is_capped(fake):
    sleeps: list[float] = []
    api = api_for(fake, sleeps, max_wait=5)
    fake.fail("GET", r"/repos/octo/demo", 429, times=1, headers={"Retry-After": "3600"})
    api.get_repo(REPO)
    assert sleeps == [5]


# ---------------------------------------------------------------- app auth


def test_jwt_claims(fake):
    settings = AppSettings(app_id="4242", private_key=private_key_pem(), api_url=fake.url)
    now = int(time.time())
    token = AppAuth(settings).jwt()
    public = serialization.load_pem_private_key(private_key_pem().encode(), None).public_key()
    claims = jwt.decode(
        token, public, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims["iss"] == "4242"
    assert now - JWT_BACKDATE <= claims["iat"] <= now - JWT_BACKDATE + 2
    assert claims["exp"] - claims["iat"] <= 600 and claims["exp"] > now
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


def soon(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def test_installation_token_cached_until_near_expiry(fake):
    settings = AppSettings(app_id="1", private_key=private_key_pem(), api_url=fake.url)
    auth = AppAuth(settings)
    fake.installation_token = "inst-token-first-0123456789"
    assert auth.installation_token(9) == "inst-token-first-0123456789"
    fake.installation_token = "inst-token-second-0123456789"
    assert auth.installation_token(9) == "inst-token-first-0123456789"  # cached
    token_calls = [c for c in fake.calls if c.path == "/app/installations/9/access_tokens"]
    assert len(token_calls) == 1 and token_calls[0].auth.startswith("Bearer ")
    fake.token_expires_at = soon(5)  # a token about to expire is renewed when next used
    assert auth.installation_token(10) == "inst-token-second-0123456789"
    fake.installation_token = "inst-token-third-0123456789"
    assert auth.installation_token(10) == "inst-token-third-0123456789"
    assert REDACTOR.redact("x inst-token-third-0123456789") == "x [REDACTED]"


def test_settings_from_env(tmp_path):
    pem = tmp_path / "key.pem"
    pem.write_text(private_key_pem())
    env = {
        "GITHUB_APP_ID": "7",
        "GITHUB_PRIVATE_KEY_PATH": str(pem),
        "GITHUB_WEBHOOK_SECRET": "s3cret-webhook",
        "GITHUB_API_URL": "https://ghe.example/api/v3/",
    }
    settings = AppSettings.from_env(env)
    assert settings.api_url == "https://ghe.example/api/v3"
    assert settings.private_key.startswith("-----BEGIN")
    assert REDACTOR.redact("s3cret-webhook") == "[REDACTED]"
    inline = AppSettings.from_env(
        {"GITHUB_APP_ID": "7", "GITHUB_PRIVATE_KEY": private_key_pem().replace("\n", "\\n")}
    )
    assert inline.private_key == settings.private_key and inline.api_url == "https://api.github.com"
    with pytest.raises(AppSettingsError, match="GITHUB_APP_ID"):
        AppSettings.from_env({})
    with pytest.raises(AppSettingsError, match="GITHUB_PRIVATE_KEY"):
        AppSettings.from_env({"GITHUB_APP_ID": "7"})
    with pytest.raises(AppSettingsError, match="not a PEM private key"):
        AppSettings.from_env({"GITHUB_APP_ID": "7", "GITHUB_PRIVATE_KEY": "not a key"})


def test_basic_auth_header():
    header = basic_auth_header("ghs_tokenvalue123")
    assert header.startswith("Authorization: Basic ")
    assert base64.b64decode(header.split()[-1]).decode() == "x-access-token:ghs_tokenvalue123"
    assert "[REDACTED]" in REDACTOR.redact(header)


def test_installation_api_renews_its_token(fake):
    settings = AppSettings(app_id="1", private_key=private_key_pem(), api_url=fake.url)
    auth = AppAuth(settings)
    fake.installation_token = "inst-token-early-0123456789"
    fake.token_expires_at = soon(10)  # it will be about to expire at the next call
    api = auth.installation_api(3, sleep=lambda s: None)
    api.get_repo(REPO)
    fake.installation_token = "inst-token-late-0123456789"
    api.get_repo(REPO)
    auths = [c.auth for c in fake.calls if c.path == f"/repos/{REPO}"]
    assert auths == ["token inst-token-early-0123456789", "token inst-token-late-0123456789"]


def test_github_enterprise_api_prefix(tmp_path, make_repo):
    """GITHUB_API_URL with a path (GitHub Enterprise Server's /api/v3) is honoured for every call."""
    import subprocess

    work, _ = make_repo({"README.md": "# demo\n"})
    bare = tmp_path / "ghe.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    ghe = FakeGitHub(prefix="/api/v3").start()
    try:
        ghe.add_repo(REPO, str(bare))
        settings = AppSettings(app_id="1", private_key=private_key_pem(), api_url=ghe.url)
        api = AppAuth(settings).installation_api(5)
        assert api.get_repo(REPO)["default_branch"] == "main"
        cid = api.create_comment(REPO, 1, "hello")
        assert ghe.comments[cid]["body"] == "hello"
        assert [c.path for c in ghe.calls] == [
            "/app/installations/5/access_tokens",
            f"/repos/{REPO}",
            f"/repos/{REPO}/issues/1/comments",
        ]
    finally:
        ghe.stop()


def test_githubs_validation_errors_are_part_of_the_message():
    from bot.github.failure import describe

    data = {
        "message": "Validation Failed",
        "errors": [
            {"resource": "PullRequest", "code": "custom", "message": "Body is too long"},
            {"resource": "PullRequest", "field": "head", "code": "invalid"},
            "plain text",
        ],
    }
    assert describe(data) == "Validation Failed — Body is too long; PullRequest head invalid; plain text"
    assert describe(None) == "no message"
