"""Daytona-only behaviour, through the SDK fake: client config, bundle, creation parameters and
labels, retries, budget, the log stream, reaping, and whole rollouts equal to local ones."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from daytona import (
    CreateSandboxFromImageParams,
    CreateSandboxFromSnapshotParams,
    DaytonaRateLimitError,
)
from daytona.common.errors import (
    DaytonaAuthenticationError,
    DaytonaBadRequestError,
    DaytonaServiceUnavailableError,
    DaytonaTimeoutError,
)

from bot.common.secrets import REDACTOR
from bot.rlm import LiteLLMClient, Rollout, SandboxError, Trace, load_config, new_run_id
from bot.rlm.repl.session import ReplSession
from bot.rlm.repo import prepare_repo
from bot.rlm.sandbox import make_provider
from bot.rlm.sandbox.daytona import client as dc
from bot.rlm.sandbox.daytona.provider import DaytonaSandboxProvider
from bot.rlm.sandbox.daytona.sandbox import canonical_patch
from bot.rlm.sandbox.daytona.transport import REQUEST_TIMEOUT
from tests.conftest import commit_files, git, py
from tests.fakes.daytona_fake import FakeDaytona

KEY = "dtn_test_key_0123456789abcdef"


@pytest.fixture
def setup(tmp_path, make_repo):
    """(config overrides -> provider, fake, prepared repo) for a one-commit repository."""
    repo_dir, _ = make_repo({"app.py": "x = 1\n"})
    made = []

    def make(fake: FakeDaytona | None = None, **overrides):
        values = {"sandbox.cache_dir": str(tmp_path / "cache"), "sandbox.daytona.retry_backoff": 0.01}
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        config = load_config(None, values, environ={})
        prepared = prepare_repo(str(repo_dir), config.cache_root())
        fake = fake or FakeDaytona(root=tmp_path / "daytona")
        provider = DaytonaSandboxProvider(config, prepared, "run-1", client=fake)
        made.append(provider)
        return provider, fake, prepared

    yield make
    for provider in made:
        provider.close()


# ---------------------------------------------------------------------------- client


def test_client_config_comes_from_our_settings_and_the_key_is_redacted():
    config = load_config(None, {"sandbox.daytona.api_url": "https://daytona.example/api"}, environ={})
    made = dc.client_config(config.sandbox.daytona, KEY)
    assert (made.api_key, made.api_url, made.target) == (
        KEY,
        "https://daytona.example/api",
        dc.DEFAULT_TARGET,
    )
    assert REDACTOR.redact(f"key={KEY}") == "key=[REDACTED]"
    env = {"DAYTONA_TARGET": "eu"}  # Daytona's own variable, read with the config (not by the engine)
    assert dc.client_config(load_config(None, {}, environ=env).sandbox.daytona, KEY).target == "eu"


def test_the_real_client_ignores_a_dotenv_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(
        "DAYTONA_API_URL=https://evil.example/api\nDAYTONA_TARGET=evil\n"
        "DAYTONA_API_KEY=stolen-key-from-the-repo\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAYTONA_API_KEY", KEY)
    monkeypatch.delenv("DAYTONA_TARGET", raising=False)
    settings = load_config(
        None, {"sandbox.daytona.api_url": "http://127.0.0.1:9/api"}, environ={}
    ).sandbox.daytona
    with pytest.warns(UserWarning, match="ignored"):
        client = dc.make_client(settings, KEY)
    assert (client._api_key, client._api_url, client._target) == (KEY, "http://127.0.0.1:9/api", "us")
    assert dc.make_client(settings, KEY) is client  # one client per key, URL and target in a process


def test_missing_key_is_a_sentence_not_a_crash(tmp_path, make_repo, monkeypatch):
    monkeypatch.delenv("DAYTONA_API_KEY", raising=False)
    (tmp_path / ".env").write_text(f"DAYTONA_API_KEY={KEY}\n")  # a target repo's .env is never read
    monkeypatch.chdir(tmp_path)
    config = load_config(None, {"sandbox.backend": "daytona"}, environ={})
    repo_dir, _ = make_repo()
    prepared = prepare_repo(str(repo_dir), tmp_path / "cache")
    with pytest.raises(SandboxError) as e:
        make_provider(config, prepared, "run-x")
    assert str(e.value) == dc.MISSING_KEY


# ---------------------------------------------------------------------------- the repository


def test_bundle_holds_only_the_pinned_commit(tmp_path, make_repo):
    repo_dir, base = make_repo({"a.txt": "base\n"})
    git(repo_dir, "checkout", "-q", "-b", "secret-branch")
    other = commit_files(repo_dir, {"private.txt": "not for the sandbox\n"}, "elsewhere")
    git(repo_dir, "checkout", "-q", "main")
    config = load_config(None, {"sandbox.cache_dir": str(tmp_path / "cache")}, environ={})
    prepared = prepare_repo(str(repo_dir), config.cache_root(), branch="main")
    git(prepared.cache, "fetch", "-q", str(repo_dir), "secret-branch")  # the cache holds more than the commit
    provider = DaytonaSandboxProvider(config, prepared, "run-b", client=FakeDaytona(root=tmp_path / "d"))
    try:
        bundle = provider.bundle_path()
        heads = git(tmp_path, "bundle", "list-heads", str(bundle)).splitlines()
        assert [h.split()[0] for h in heads] == [base]
        clone = tmp_path / "clone"
        git(tmp_path, "init", "-q", str(clone))
        git(clone, "fetch", "-q", str(bundle), "+refs/*:refs/b/*")
        assert git(clone, "cat-file", "-t", base) == "commit"
        missing = subprocess.run(["git", "cat-file", "-e", other], cwd=clone, capture_output=True)
        assert missing.returncode != 0
    finally:
        provider.close()


def test_the_sandbox_repository_has_no_remote_and_no_extra_refs(setup):
    provider, _, prepared = setup()
    sandbox = provider.create("root")
    refs = git(Path(sandbox.workdir), "for-each-ref", "--format=%(refname)")
    assert refs == ""
    assert git(Path(sandbox.workdir), "remote") == ""
    assert git(Path(sandbox.workdir), "rev-parse", "HEAD") == prepared.commit


def test_the_agents_git_config_cannot_change_the_patch(setup, tmp_path):
    provider, _, prepared = setup()
    sandbox = provider.create("root")
    session = ReplSession(sandbox.start_driver())
    session.start({"task": "t", "output_limit": 1000, "limits": {}})
    marker = tmp_path / "hook-ran"
    code = (
        f"open('.git/config', 'a').write('[core]\\n\\tfsmonitor = touch {marker}\\n"
        f"[diff]\\n\\tnoprefix = true\\n\\texternal = touch {marker}\\n')\n"
        "open('.gitattributes', 'w').write('*.py diff=evil\\n')\n"
        "open('app.py', 'w').write('x = 2\\n')\n"
    )
    assert session.execute(code, 10, lambda fn, a: None, lambda: None).error is None
    patch = sandbox.diff()
    assert "--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n" in patch
    assert not marker.exists()


def test_a_diff_that_does_not_fit_the_base_is_refused(setup):
    _, _, prepared = setup()
    forged = "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-y = 7\n+y = 8\n"
    with pytest.raises(SandboxError, match="does not apply"):
        canonical_patch(prepared, forged)


# ---------------------------------------------------------------------------- creation


def test_creation_parameters_and_labels(setup):
    provider, fake, _ = setup(rlm__global_timeout=1200)
    provider.create("root.2")
    params = fake.created[0]
    assert isinstance(params, CreateSandboxFromSnapshotParams) and params.snapshot is None
    labels = params.labels
    assert labels[dc.LABEL_APP] == dc.APP_VALUE
    assert (labels[dc.LABEL_ROLLOUT], labels[dc.LABEL_AGENT]) == ("run-1", "root.2")
    assert dc.owner_alive(labels[dc.LABEL_OWNER])
    assert float(labels[dc.LABEL_EXPIRES]) > time.time() + 1200
    assert params.network_block_all is True and params.network_allow_list is None
    assert params.ephemeral is True and params.auto_delete_interval == 0
    assert params.auto_stop_interval == params.ttl_minutes == 30
    assert params.env_vars == {} and params.public is False


def test_image_resources_and_allow_list(setup):
    provider, fake, _ = setup(
        sandbox__daytona__image="python:3.12-slim",
        sandbox__daytona__cpu=2,
        sandbox__daytona__memory_gb=4,
        sandbox__daytona__network_allow_list="10.0.0.0/8",
        sandbox__daytona__ephemeral=False,
    )
    provider.create("root")
    params = fake.created[0]
    assert isinstance(params, CreateSandboxFromImageParams) and params.image == "python:3.12-slim"
    assert (params.resources.cpu, params.resources.memory, params.resources.disk) == (2, 4, None)
    assert params.network_block_all is False and params.network_allow_list == "10.0.0.0/8"
    assert params.auto_delete_interval == 30 and not params.ephemeral


def test_rate_limits_and_outages_are_retried(setup, tmp_path):
    fake = FakeDaytona(
        root=tmp_path / "d",
        failures=[
            DaytonaRateLimitError("Too many requests", 429),
            DaytonaServiceUnavailableError("busy", 503),
        ],
    )
    provider, fake, _ = setup(fake)
    sandbox = provider.create("root")
    assert fake.create_calls == 3 and list(fake.sandboxes) == [sandbox.id]


def test_persistent_failure_is_a_readable_error(setup, tmp_path):
    fake = FakeDaytona(root=tmp_path / "d", failures=[DaytonaRateLimitError("Too many requests", 429)] * 9)
    provider, fake, _ = setup(fake, sandbox__daytona__create_retries=2)
    with pytest.raises(
        SandboxError, match=r"could not create a sandbox for root.1 after 3 attempts: Too many"
    ):
        provider.create("root.1")
    assert fake.create_calls == 3


def test_a_refusal_is_not_retried(setup, tmp_path):
    fake = FakeDaytona(root=tmp_path / "d", failures=[DaytonaAuthenticationError("Invalid API key", 401)])
    provider, fake, _ = setup(fake)
    with pytest.raises(SandboxError, match="Invalid API key"):
        provider.create("root")
    assert fake.create_calls == 1


def test_a_sandbox_left_by_a_timed_out_creation_is_deleted(setup, tmp_path):
    def made_then_timed_out(fake, params):
        fake.make_sandbox(params)
        raise DaytonaTimeoutError("Failed to create sandbox: timed out")

    provider, fake, _ = setup(FakeDaytona(root=tmp_path / "d", failures=[made_then_timed_out]))
    sandbox = provider.create("root")
    assert fake.create_calls == 2 and len(fake.created) == 2
    assert list(fake.sandboxes) == [sandbox.id]


def test_creations_run_in_parallel_unless_limited(setup, tmp_path):
    for limit, expect in ((None, 6), (1, 1)):
        fake = FakeDaytona(root=tmp_path / f"d{limit}", create_latency=0.15)
        provider, fake, _ = setup(fake, sandbox__daytona__create_concurrency=limit)
        threads = [threading.Thread(target=provider.create, args=(f"root.{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert fake.max_active_creates == expect and len(fake.sandboxes) == 6


def test_close_during_creation_leaves_nothing(setup, tmp_path):
    provider, fake, _ = setup(FakeDaytona(root=tmp_path / "d", create_latency=0.5))
    errors = []

    def create():
        try:
            provider.create("late")
        except SandboxError as e:
            errors.append(str(e))

    t = threading.Thread(target=create)
    t.start()
    time.sleep(0.1)
    provider.close()
    t.join()
    assert errors == ["the rollout is over; no new sandbox"]
    assert fake.sandboxes == {} and fake.create_calls == 1


# ---------------------------------------------------------------------------- the REPL transport


def test_the_repl_survives_broken_log_streams(setup, tmp_path):
    provider, fake, _ = setup(FakeDaytona(root=tmp_path / "d", drop_log_streams=2, log_chunk=3))
    sandbox = provider.create("root")
    session = ReplSession(sandbox.start_driver())
    session.start({"task": "t", "output_limit": 1000, "limits": {}})
    results = [session.execute(f"print('line', {i})", 10, lambda fn, a: None, lambda: None) for i in range(3)]
    assert [r.stdout for r in results] == ["line 0\n", "line 1\n", "line 2\n"]
    assert fake.drop_log_streams == 0


def test_the_repl_works_with_a_daemon_that_echoes_input(setup, tmp_path):
    provider, _, _ = setup(FakeDaytona(root=tmp_path / "d", old_daemon=True))
    session = ReplSession(provider.create("root").start_driver())
    session.start({"task": "t", "output_limit": 1000, "limits": {}})
    r = session.execute("print(llm_query('q'))", 10, lambda fn, a: "answer", lambda: None)
    assert (r.stdout, r.error) == ("answer\n", None)


def test_a_restarted_repl_gets_a_new_session(setup):
    provider, _, _ = setup()
    sandbox = provider.create("root")
    first = ReplSession(sandbox.start_driver())
    first.start({"task": "t", "output_limit": 1000, "limits": {}})
    first.execute("x = 1", 10, lambda fn, a: None, lambda: None)
    first.close()
    second = ReplSession(sandbox.start_driver())
    second.start({"task": "t", "output_limit": 1000, "limits": {}})
    r = second.execute("print('x' in dir())", 10, lambda fn, a: None, lambda: None)
    assert r.stdout == "False\n"
    assert "exit" in first.transport.describe_exit() or "unknown" in first.transport.describe_exit()


def image_path(tmp_path: Path, tools: tuple[str, ...]) -> str:
    """A PATH holding only `tools`: an image that lacks the others."""
    import shutil

    bin_dir = tmp_path / "image-bin"
    bin_dir.mkdir()
    for tool in tools:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return str(bin_dir)


def test_an_image_without_git_is_a_readable_error_and_leaves_nothing(setup, tmp_path):
    path = image_path(tmp_path, ("sh", "bash", "env", "mkdir", "rm"))
    provider, fake, _ = setup(FakeDaytona(root=tmp_path / "d", image_env={"PATH": path}))
    with pytest.raises(SandboxError, match=r"could not prepare Daytona sandbox \w+ for root: checking out"):
        provider.create("root")
    assert fake.sandboxes == {} and fake.create_calls == 1


def test_an_image_without_python_is_a_readable_repl_error(setup, tmp_path):
    path = image_path(tmp_path, ("sh", "bash", "env", "mkdir", "rm", "git"))
    provider, _, _ = setup(FakeDaytona(root=tmp_path / "d", image_env={"PATH": path}))
    sandbox = provider.create("root")
    session = ReplSession(sandbox.start_driver())
    with pytest.raises(SandboxError, match="exit status 127: python3 or the driver was not found"):
        session.start({"task": "t", "output_limit": 1000, "limits": {}}, timeout=10)


# ---------------------------------------------------------------------------- reaping


def _labels(rollout: str, owner: str, expires: float) -> dict[str, str]:
    return {
        dc.LABEL_APP: dc.APP_VALUE,
        dc.LABEL_ROLLOUT: rollout,
        dc.LABEL_AGENT: "root",
        dc.LABEL_OWNER: owner,
        dc.LABEL_EXPIRES: str(int(expires)),
    }


def test_reap_deletes_sandboxes_of_rollouts_that_are_gone(setup, tmp_path):
    provider, fake, _ = setup()
    running = provider.create("root")  # rollout run-1 is live in this process
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = os.uname().nodename
    later, earlier = time.time() + 3600, time.time() - 60
    make = {
        "dead-owner": _labels("run-dead", f"{host}:{dead.pid}:1", later),
        "alive-owner": _labels("run-alive", dc.owner_label(), later),
        "other-host": _labels("run-far", "elsewhere:1:1", later),
        "expired": _labels("run-old", "elsewhere:1:1", earlier),
    }
    ids = {
        name: fake.make_sandbox(CreateSandboxFromSnapshotParams(labels=labels)).id
        for name, labels in make.items()
    }
    unrelated = fake.make_sandbox(CreateSandboxFromSnapshotParams(labels={"team": "other"})).id
    config = load_config(None, {}, environ={})
    assert dc.reap_orphans(config, client=fake) == 2
    assert set(fake.sandboxes) == {running.id, ids["alive-owner"], ids["other-host"], unrelated}
    provider.close()
    assert dc.reap_orphans(config, client=fake) == 0  # a closed rollout left nothing behind


# ---------------------------------------------------------------------------- whole rollouts

ROLLOUT_SCRIPT = [
    {
        "task": "^Fix",
        "responses": [
            py('answers = [rlm_query(t) for t in ["Child fails", "Child one", "Child two"]]\nprint(answers)'),
            py(
                """
                print(edit_file("app.py", "x = 1", "x = 2"))
                open("notes.md", "w").write("\\n".join(answers) + "\\n")
                open("debug.log", "w").write("ignored\\n")
                FINAL("fixed: " + answers[1])
                """
            ),
        ],
    },
    {"task": "^Child", "responses": [py("FINAL(task.lower() + ' done')")]},
]


def run_rollout(config, prepared, factory, results: Path):
    trace = Trace(new_run_id(), results)
    model = LiteLLMClient(config.model, api_key=None)
    return Rollout(config, model, prepared, "Fix the app", provider_factory=factory, trace=trace).run()


def refuse_first_child(fake, params):
    if params.labels[dc.LABEL_AGENT] == "root.1":
        raise DaytonaBadRequestError("Snapshot not found", 400)


def test_a_failed_creation_is_the_childs_error_text_and_costs_no_budget(
    make_repo, write_script, make_config, tmp_path
):
    repo_dir, _ = make_repo({"app.py": "x = 1\n", ".gitignore": "*.log\n"})
    config = make_config(write_script(ROLLOUT_SCRIPT), rlm__max_sandboxes=3)
    prepared = prepare_repo(str(repo_dir), config.cache_root())
    fake = FakeDaytona(root=tmp_path / "daytona", failures=[refuse_first_child] * 10)
    result = run_rollout(
        config,
        prepared,
        lambda rid: DaytonaSandboxProvider(config, prepared, rid, client=fake),
        tmp_path / "results",
    )

    assert result.status == "completed", result.error
    agents = {a["id"]: a for a in result.results["agents"]}
    assert agents["root.1"]["status"] == "error" and "Snapshot not found" in agents["root.1"]["error"]
    # max_sandboxes 3 = root + two children: the refused child gave its reservation back.
    assert agents["root.2"]["status"] == agents["root.3"]["status"] == "completed"
    assert result.answer == "fixed: child one done"
    assert (
        "+Error: sub-agent root.1 ended without an answer (error): Daytona could not create" in result.patch
    )
    assert "debug.log" not in result.patch
    assert fake.sandboxes == {}


def test_same_patch_from_both_backends(make_repo, write_script, make_config, tmp_path):
    repo_dir, _ = make_repo({"app.py": "x = 1\n", "old.txt": "bye\n", ".gitignore": "*.log\n"})
    script = [
        {
            "task": "^Fix",
            "responses": [
                py(
                    """
        import os
        print(edit_file("app.py", "x = 1", "x = 2"))
        os.remove("old.txt")
        open("new.bin", "wb").write(bytes(range(256)))
        open("debug.log", "w").write("ignored\\n")
        FINAL("done")
        """
                )
            ],
        }
    ]
    config = make_config(write_script(script))
    prepared = prepare_repo(str(repo_dir), config.cache_root())
    local = run_rollout(config, prepared, lambda rid: make_provider(config, prepared, rid), tmp_path / "r1")
    fake = FakeDaytona(root=tmp_path / "daytona")
    remote = run_rollout(
        config,
        prepared,
        lambda rid: DaytonaSandboxProvider(config, prepared, rid, client=fake),
        tmp_path / "r2",
    )
    assert local.status == remote.status == "completed"
    assert remote.patch == local.patch and "new.bin" in remote.patch and "debug.log" not in remote.patch


def test_rlm_sandboxes_reap_cleans_local_leftovers(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("DAYTONA_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = tmp_path / "rlm-bot" / "sandboxes" / "run-killed"
    leftover.mkdir(parents=True)
    (leftover / "owner.json").write_text(f'{{"pid": {dead.pid}, "start": "1"}}')
    result = CliRunner().invoke(app, ["sandboxes", "reap"])
    assert result.exit_code == 0, result.output
    assert "reaped local sandboxes: 1; Daytona sandboxes: skipped (no DAYTONA_API_KEY)" in result.output
    assert not leftover.exists()


def test_creation_retries_stop_at_the_rollouts_time_limit(setup, tmp_path):
    fake = FakeDaytona(root=tmp_path / "d", failures=[DaytonaRateLimitError("Too many requests", 429)] * 9)
    provider, fake, _ = setup(fake, rlm__global_timeout=3, sandbox__daytona__retry_backoff=1.0)
    started = time.monotonic()
    with pytest.raises(SandboxError, match="Too many requests|time limit is reached"):
        provider.create("root")
    assert time.monotonic() - started < 3.5 and fake.create_calls < 4


def test_the_fake_has_the_sdks_signatures():
    import inspect

    from daytona import Daytona, Sandbox
    from daytona._sync.filesystem import FileSystem
    from daytona._sync.process import Process
    from daytona._sync.snapshot import SnapshotService

    from tests.fakes import daytona_fake as f

    pairs = {
        (f.FakeDaytona, Daytona): ("create", "list", "get", "delete"),
        (f.FakeSandbox, Sandbox): ("get_user_home_dir", "refresh_data", "delete", "create_snapshot"),
        (f.FakeSnapshots, SnapshotService): ("get", "delete"),
        (f.FakeFileSystem, FileSystem): ("create_folder", "upload_file"),
        (f.FakeProcess, Process): (
            "exec",
            "create_session",
            "execute_session_command",
            "get_session_command",
            "get_session_command_logs",
            "get_session_command_logs_async",
            "send_session_command_input",
            "delete_session",
        ),
    }
    for (fake_cls, real_cls), names in pairs.items():
        for name in names:
            fake_params = list(inspect.signature(getattr(fake_cls, name)).parameters)
            real_params = list(inspect.signature(getattr(real_cls, name)).parameters)
            assert fake_params == real_params, (fake_cls.__name__, name)
            fake_async = inspect.iscoroutinefunction(getattr(fake_cls, name))
            assert fake_async == inspect.iscoroutinefunction(inspect.unwrap(getattr(real_cls, name))), name


def test_every_request_to_the_repl_is_bounded_in_time(setup):
    provider, fake, _ = setup()
    sandbox = provider.create("root")
    session = ReplSession(sandbox.start_driver())
    session.start({"task": "t", "output_limit": 1000, "limits": {}}, timeout=20)
    assert fake.request_timeouts and all(t == REQUEST_TIMEOUT for t in fake.request_timeouts)
