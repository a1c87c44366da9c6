"""The ready environment: setup once per rollout, cached, shared read-only by every agent.

A repository whose tests import a package the base Python lacks (`shinylib`, shipped in the
repository as a wheel built here, so pip runs offline) and whose own package (`app`) installs in
editable mode through a small in-tree PEP 660 backend (no setuptools, no network).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
import zipfile
from pathlib import Path

import pytest

from bot.rlm import engine, read_events
from bot.rlm.environment import (
    AUTO_NOTHING,
    ENV_IN_SANDBOX,
    SETUP_FAILED,
    Environment,
    auto_commands,
    is_manifest,
    manifests,
    prompt_note,
)
from bot.rlm.prompts import system_prompt
from bot.rlm.repo import prepare_repo
from bot.rlm.sandbox import bwrap_works
from tests.conftest import commit_files, leftovers, py

needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")


def wheel_bytes(name: str, version: str, files: dict[str, str]) -> bytes:
    """A valid pure-Python wheel holding `files`."""
    import io

    dist = f"{name}-{version}.dist-info"
    files = {
        **files,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    buf, record = io.BytesIO(), []
    with zipfile.ZipFile(buf, "w") as z:
        for path, text in files.items():
            data = text.encode()
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        z.writestr(f"{dist}/RECORD", "\n".join([*record, f"{dist}/RECORD,,"]) + "\n")
    return buf.getvalue()


# A PEP 517/660 backend in the repository: `pip install -e .` works offline, without setuptools.
# WHEEL_WRITER is its wheel writer, shared with the other test projects that carry a backend.
WHEEL_WRITER = """
import base64, hashlib, os, subprocess, zipfile

def _wheel(directory, files):
    dist = "app-0.1.dist-info"
    files = dict(files)
    files[dist + "/METADATA"] = "Metadata-Version: 2.1\\nName: app\\nVersion: 0.1\\n"
    files[dist + "/WHEEL"] = "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = []
    name = "app-0.1-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as z:
        for path, text in files.items():
            data = text.encode()
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
        z.writestr(dist + "/RECORD", "\\n".join(record + [dist + "/RECORD,,"]) + "\\n")
    return name
"""

BACKEND = (
    WHEEL_WRITER
    + """

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"app/__init__.py": open("app/__init__.py").read()})

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"app.pth": os.getcwd() + "\\n"})
"""
)

PROJECT = {
    "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["_build"]\n\n'
    '[project]\nname = "app"\nversion = "0.1"\n',
    "_build/backend.py": BACKEND,
    "app/__init__.py": 'VALUE = "original"\n',
    "tests/__init__.py": "",
    "tests/test_app.py": "import unittest\n\nimport shinylib\n\n\nclass T(unittest.TestCase):\n"
    '    def test_shine(self):\n        self.assertEqual(shinylib.shine(), "shiny")\n',
    "wheels/shinylib-1.0-py3-none-any.whl": wheel_bytes(
        "shinylib", "1.0", {"shinylib/__init__.py": 'def shine():\n    return "shiny"\n'}
    ),
}
SETUP = [
    'python3 -m venv "$RLM_ENV/venv"',
    '"$RLM_ENV/venv/bin/python" -m pip install -q --no-index --find-links wheels shinylib -e .',
]

# Every agent: runs the tests in a subprocess, imports shinylib in its REPL, edits `app` in its
# own checkout and imports it from elsewhere (through the editable install), and tries to write
# into $RLM_ENV.
AGENT_CODE = py(
    """
    import os, shutil, subprocess, sys
    r = subprocess.run([sys.executable, "-m", "unittest", "tests.test_app"], capture_output=True, text=True)
    me = task.split()[-1]
    edit_file("app/__init__.py", "original", me)
    probe = subprocess.run(["python", "-c", "import app; print(app.VALUE)"], cwd="/tmp",
                           capture_output=True, text=True)
    import shinylib
    try:
        open(os.environ["RLM_ENV"] + "/mine", "w").write("x")
        wrote = "WROTE"
    except OSError:
        wrote = "read-only"
    remount = subprocess.run(["mount", "-o", "remount,rw,bind", os.environ["RLM_ENV"]], capture_output=True)
    try:
        open(os.environ["RLM_ENV"] + "/mine", "w").write("x")
        wrote += "/WROTE"
    except OSError:
        wrote += "/read-only"
    report = {"rc": r.returncode, "err": r.stderr[-300:], "probe": probe.stdout.strip() + probe.stderr[-200:],
              "python": shutil.which("python"), "shine": shinylib.shine(), "write": wrote, "me": me}
    """
)


def tree_script(write_script) -> Path:
    return write_script(
        [
            {
                "task": "^Run tests as root",
                "responses": [
                    AGENT_CODE
                    + py('kids = rlm_query_batched(["Run tests as child1", "Run tests as child2"])'),
                    py("import json\nFINAL(json.dumps([report] + [json.loads(k) for k in kids]))"),
                ],
            },
            {
                "task": "^Run tests as child",
                "responses": [AGENT_CODE + py("import json\nFINAL(json.dumps(report))")],
            },
        ]
    )


def events_of(result, kind: str) -> list[dict]:
    return [e for e in read_events(result.events_path) if e["type"] == kind]


@needs_bwrap
def test_setup_once_shared_read_only_by_a_tree_and_cached(make_repo, write_script, make_config, tmp_path):
    repo, _ = make_repo(PROJECT)
    script = tree_script(write_script)

    # Without setup: the base Python has no shinylib; the agent's test run cannot import it.
    bare = write_script(
        [
            {
                "task": ".",
                "responses": [
                    py(
                        """
        import subprocess, sys
        r = subprocess.run([sys.executable, "-m", "unittest", "tests.test_app"], capture_output=True, text=True)
        FINAL(str(r.returncode) + r.stderr[-400:])
        """
                    )
                ],
            }
        ]
    )
    config = make_config(bare)
    prepared = engine.prepare(config, str(repo))
    result = engine.run(config, prepared, "Run the tests")
    assert result.status == "completed" and "No module named 'shinylib'" in result.answer
    assert result.results["setup"] is None

    config = make_config(script, sandbox__setup=SETUP)
    result = engine.run(config, prepared, "Run tests as root")
    assert result.status == "completed", result.error
    reports = json.loads(result.answer)
    assert [r["me"] for r in reports] == ["root", "child1", "child2"]
    for r in reports:
        assert r["rc"] == 0, r["err"]  # the tests import shinylib and pass
        assert r["shine"] == "shiny"  # the REPL itself runs on the environment's interpreter
        assert r["python"] == f"{ENV_IN_SANDBOX}/venv/bin/python"
        assert r["probe"] == r["me"]  # the editable install resolves to the agent's OWN checkout
        assert r["write"] == "read-only/read-only"
    # Setup ran once for the three agents, before any model call; its files are not in the patch.
    started, finished = events_of(result, "setup_started"), events_of(result, "setup_finished")
    assert len(started) == len(finished) == 1 and finished[0]["status"] == "ok"
    assert finished[0]["cached"] is False
    kinds = [e["type"] for e in read_events(result.events_path)]
    assert kinds.index("setup_finished") < kinds.index("llm_call")
    assert result.patch.count("diff --git") == 1 and "app/__init__.py" in result.patch
    assert "egg-info" not in result.patch and "venv" not in result.patch
    assert result.results["setup"]["status"] == "ok"
    assert finished[0]["python"] == f"{ENV_IN_SANDBOX}/venv/bin/python"

    # A second rollout on the unchanged repository: a cache hit, well under a second.
    again = engine.run(config, prepared, "Run tests as root")
    assert again.status == "completed", again.error
    (hit,) = events_of(again, "setup_finished")
    assert hit["cached"] is True and hit["duration"] < 1.0
    assert all(r["rc"] == 0 and r["probe"] == r["me"] for r in json.loads(again.answer))
    assert leftovers(tmp_path / "cache") == []

    # A change to a dependency file builds anew.
    commit_files(repo, {"requirements-dev.txt": "shinylib\n"}, "deps")
    newer = engine.prepare(config, str(repo))
    third = engine.run(config, newer, "Run tests as root")
    assert events_of(third, "setup_finished")[0]["cached"] is False


@needs_bwrap
def test_a_failing_setup_ends_the_run_before_any_model_call(make_repo, write_script, make_config):
    repo, _ = make_repo({"a.py": "x = 1\n"})
    script = write_script([{"task": ".", "responses": [py("FINAL('should not run')")]}])
    config = make_config(
        script,
        sandbox__setup=[
            "echo preparing things",
            "true && (echo broken >&2; exit 3) && echo after",
            "echo never",
        ],
    )
    result = engine.run(config, engine.prepare(config, str(repo)), "Do it")
    assert result.status == "error"
    assert result.error.startswith(SETUP_FAILED.split("{")[0])
    assert (
        "exit code 3" in result.error and "`true && (echo broken >&2; exit 3) && echo after`" in result.error
    )
    assert "preparing things" in result.error and "broken" in result.error
    assert result.error.endswith("(echo broken >&2; exit 3) && echo after\nbroken")  # nothing ran after it
    kinds = [e["type"] for e in read_events(result.events_path)]
    assert "llm_call" not in kinds and "agent_started" not in kinds
    (finished,) = events_of(result, "setup_finished")
    assert finished["status"] == "failed" and "broken" in finished["log_tail"]
    assert result.results["totals"]["cost_usd"] == 0


@needs_bwrap
def test_a_setup_past_its_time_limit_is_stopped(make_repo, write_script, make_config):
    repo, _ = make_repo({"a.py": "x = 1\n"})
    script = write_script([{"task": ".", "responses": [py("FINAL('no')")]}])
    config = make_config(script, sandbox__setup=["echo started", "sleep 30"], sandbox__setup_timeout=1)
    result = engine.run(config, engine.prepare(config, str(repo)), "Do it")
    assert result.status == "error" and "longer than 1s" in result.error and "started" in result.error
    assert events_of(result, "setup_finished")[0]["duration"] < 10


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from the host")

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@needs_bwrap
def test_network_during_setup_only(make_repo, write_script, make_config, loopback_server):
    """Agents never have a network; setup has its own (never the host's: its loopback listener is
    out of reach, see test_tenancy_env.py) and none when setup_network is off."""
    repo, _ = make_repo({"a.py": "x = 1\n"})
    fetch = (
        'python3 -c "import urllib.request\ntry: print(urllib.request.urlopen('
        f"'{loopback_server}', timeout=5).read().decode())\nexcept OSError as e: print('setup', type(e).__name__)\""
    )
    agent = write_script(
        [
            {
                "task": ".",
                "responses": [
                    py(
                        f"""
        import urllib.request
        try:
            urllib.request.urlopen({loopback_server!r}, timeout=5)
            FINAL("agent reached the host")
        except OSError as e:
            FINAL("agent offline")
        """
                    )
                ],
            }
        ]
    )
    for network in (True, False):
        config = make_config(agent, sandbox__setup=[fetch], sandbox__setup_network=network)
        result = engine.run(config, engine.prepare(config, str(repo)), "Do it")
        assert result.status == "completed", result.error
        log_tail = events_of(result, "setup_finished")[0]["log_tail"]
        assert "hello from the host" not in log_tail and "setup URLError" in log_tail
        assert result.answer == "agent offline"


def test_manifests_and_auto_detection(make_repo, tmp_path):
    assert all(
        map(
            is_manifest,
            [
                "pyproject.toml",
                "requirements-dev.txt",
                "sub/package-lock.json",
                "requirements/test.txt",
                "uv.lock",
                "test-requirements.txt",
            ],
        )
    )
    assert not any(map(is_manifest, ["README.md", "node_modules/x/package.json", "src/setup_utils.py"]))
    repo, _ = make_repo(
        {
            "pyproject.toml": '[project]\nname = "p"\n[project.optional-dependencies]\ntest = ["pytest"]\n',
            "requirements-dev.txt": "ruff\n",
            "package.json": "{}",
            "package-lock.json": "{}",
            "src/p.py": "",
        }
    )
    prepared = prepare_repo(str(repo), tmp_path / "cache")
    found = manifests(prepared)
    assert [p for p, _ in found] == [
        "package-lock.json",
        "package.json",
        "pyproject.toml",
        "requirements-dev.txt",
    ]
    commands = auto_commands(prepared, found)
    assert commands[0] == 'python3 -m venv "$RLM_ENV/venv"'
    assert commands[1].endswith("install --disable-pip-version-check -e '.[test]'")
    assert commands[2].endswith("-r requirements-dev.txt")
    assert any(c.startswith("npm ci") for c in commands)
    empty, _ = make_repo({"notes.txt": "hi"}, name="empty")
    assert auto_commands(prepare_repo(str(empty), tmp_path / "cache"), ()) == []
    assert "found no" in AUTO_NOTHING


def test_the_prompt_says_what_setup_produced():
    env = Environment(
        key="k",
        path=ENV_IN_SANDBOX,
        path_dirs=(f"{ENV_IN_SANDBOX}/venv/bin",),
        python=f"{ENV_IN_SANDBOX}/venv/bin/python",
        node_path=None,
        cached=True,
        duration=1.0,
        log_tail="",
        commands=tuple(SETUP),
    )
    prompt = system_prompt(1, 2, "a" * 40, "goal", environment=prompt_note(env))
    facts = prompt.split("## How to act")[0]  # the sandbox facts section
    assert "python3 -m venv" in facts and "`sys.executable` subprocesses" in facts and ENV_IN_SANDBOX in facts
    # which test tools it holds and how the project's own packages import are measured, not assumed
    assert "resolves to YOUR checkout" not in facts and "import, are measured" in facts
    from bot.rlm.sandbox.local.inherit import Inherited, inherit_note

    job = Inherited(
        prefix="/opt/py", binds=("/opt/py",), checkout="/home/runner/work/r/r", python="/opt/py/bin/python3"
    )
    assert "(/opt/py) is read-only and first on PATH" in inherit_note(
        job
    ) and "YOUR checkout" in inherit_note(job)
    assert inherit_note(None) == ""
    assert prompt_note(None) == "" and system_prompt(0, 2, "a" * 40, "g") == system_prompt(
        0, 2, "a" * 40, "g", environment=""
    )


@needs_bwrap
def test_cli_setup_is_repeatable_and_a_failure_is_one_clear_sentence(make_repo, write_script, tmp_path):
    from tests.test_cli import rlm

    repo, _ = make_repo({"a.py": "x = 1\n"})
    agent = write_script(
        [
            {
                "task": ".",
                "responses": [
                    py(
                        """
        import shutil, subprocess
        FINAL(subprocess.run(["hello"], capture_output=True, text=True).stdout.strip())
        """
                    )
                ],
            }
        ]
    )
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    tool = 'mkdir -p "$RLM_ENV/bin" && printf \'#!/bin/sh\\necho hi from setup\\n\' > "$RLM_ENV/bin/hello"'
    args = ["run", str(repo), "-p", "x", "--model", f"scripted/{agent}", "--results-dir", str(tmp_path / "r")]
    proc = rlm(*args, "--setup", tool, "--setup", 'chmod +x "$RLM_ENV/bin/hello"', cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "🧰 setting up the environment (2 commands)" in proc.stderr
    assert "🧰 environment ready (built)" in proc.stderr and "answer:\nhi from setup" in proc.stderr

    env["RLM_SANDBOX__SETUP"] = "echo nope; false"  # one command from the environment
    proc = rlm(*args, cwd=tmp_path, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "The environment setup failed (exit code 1) in `echo nope; false`" in proc.stderr
    assert proc.stderr.count("$ echo nope; false") == 1  # the setup log's tail is printed once


def test_old_environments_are_pruned_unless_in_use(make_repo, tmp_path):
    import os
    import time

    from bot.rlm.environment import SetupSpec
    from bot.rlm.sandbox.environments import envs_root, prune
    from bot.rlm.sandbox.local.env import LocalEnvironments

    repo, _ = make_repo({"a.py": "x = 1\n"})
    prepared = prepare_repo(str(repo), tmp_path / "cache")
    held, keys = [], []
    for i in range(4):
        envs = LocalEnvironments(tmp_path / "cache", keep=2)
        env = envs.get(
            SetupSpec((f"echo {i}",), False, 30, ()),
            "base",
            prepared,
            None,
            "/usr/bin:/bin",
            threading.Event(),
        )
        assert env.cached is False and (envs.host_dir / "..").resolve().is_dir()
        os.utime(envs.host_dir.parent / "ready.json", (time.time() + i, time.time() + i))
        held.append(envs)
        keys.append(envs.host_dir.parent.name)
    root = envs_root(tmp_path / "cache")
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(keys)  # all in use: all kept
    held[0].release()
    held[1].release()
    assert sorted(prune(root, 2)) == sorted(keys[:2])  # the two oldest, now unused
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(keys[2:])
    for envs in held[2:]:
        envs.release()
    assert prune(root, 1) == [keys[2]]


# ---------------------------------------------------------------------------- Daytona


def test_daytona_setup_once_then_every_agent_starts_from_its_snapshot(
    make_repo, write_script, make_config, tmp_path
):
    from bot.rlm import LiteLLMClient, Rollout, Trace, new_run_id
    from bot.rlm.sandbox.daytona import client as dc
    from bot.rlm.sandbox.daytona.env import SNAPSHOT_PREFIX
    from bot.rlm.sandbox.daytona.provider import DaytonaSandboxProvider
    from tests.fakes.daytona_fake import FakeDaytona

    repo, _ = make_repo({"app.py": "x = 1\n"})
    agent = py(
        """
        import os, subprocess
        report = "|".join([subprocess.run(["hello"], capture_output=True, text=True).stdout.strip(),
                           str(os.path.exists("setup-wrote.txt")),
                           str(open(os.environ["RLM_ENV"] + "/setup-cwd").read().strip() == os.getcwd())])
        """
    )
    script = write_script(
        [
            {
                "task": "^Root",
                "responses": [
                    agent + py('kids = rlm_query_batched(["Child 1", "Child 2"])'),
                    py('open("app.py", "w").write("x = 2\\n")\nFINAL(";".join([report] + kids))'),
                ],
            },
            {"task": "^Child", "responses": [agent + py("FINAL(report)")]},
        ]
    )
    setup = [
        'mkdir -p "$RLM_ENV/bin" && printf \'#!/bin/sh\\necho hi from setup\\n\' > "$RLM_ENV/bin/hello"',
        'chmod +x "$RLM_ENV/bin/hello" && pwd > "$RLM_ENV/setup-cwd" && echo scratch > setup-wrote.txt',
    ]
    config = make_config(script, sandbox__setup=setup, sandbox__backend="daytona")
    prepared = prepare_repo(str(repo), config.cache_root())
    fake = FakeDaytona(root=tmp_path / "daytona")

    def rollout():
        trace = Trace(new_run_id(), tmp_path / "results")
        return Rollout(
            config,
            LiteLLMClient(config.model, api_key=None),
            prepared,
            "Root task",
            provider_factory=lambda rid: DaytonaSandboxProvider(config, prepared, rid, client=fake),
            trace=trace,
        ).run()

    result = rollout()
    assert result.status == "completed", result.error
    # every agent, its own checkout, with what setup generated in its checkout (not in the patch)
    assert result.answer == ";".join(["hi from setup|True|True"] * 3)
    (name,) = fake.snapshot.captures
    assert name.startswith(SNAPSHOT_PREFIX)
    setup_params, *agent_params = fake.created
    assert setup_params.labels[dc.LABEL_AGENT] == "setup" and setup_params.network_block_all is False
    assert len(agent_params) == 3
    assert all(p.snapshot == name and p.network_block_all is True and p.env_vars == {} for p in agent_params)
    assert "setup-wrote.txt" not in result.patch and "x = 2" in result.patch
    assert events_of(result, "setup_finished")[0]["cached"] is False

    again = rollout()  # a cache hit: no setup sandbox, no new snapshot
    assert again.status == "completed", again.error
    assert fake.snapshot.captures == [name] and len(fake.created) == 7
    assert all(p.snapshot == name for p in fake.created[4:])
    (hit,) = events_of(again, "setup_finished")
    assert hit["cached"] is True and hit["duration"] < 1.0
    assert fake.sandboxes == {}

    failing = make_config(script, sandbox__setup=["echo oops; exit 4"], sandbox__backend="daytona")
    trace = Trace(new_run_id(), tmp_path / "results")
    bad = Rollout(
        failing,
        LiteLLMClient(failing.model, api_key=None),
        prepared,
        "Root task",
        provider_factory=lambda rid: DaytonaSandboxProvider(failing, prepared, rid, client=fake),
        trace=trace,
    ).run()
    assert bad.status == "error" and "exit code 4" in bad.error and "oops" in bad.error
    assert fake.snapshot.captures == [name] and fake.sandboxes == {}


@needs_bwrap
def test_setup_auto_installs_a_python_project_in_editable_mode(make_repo, write_script, make_config):
    files = {
        k: v for k, v in PROJECT.items() if k in ("pyproject.toml", "_build/backend.py", "app/__init__.py")
    }
    repo, _ = make_repo(files)
    script = write_script(
        [
            {
                "task": ".",
                "responses": [
                    py(
                        """
        import subprocess
        edit_file("app/__init__.py", "original", "edited here")
        probe = subprocess.run(["python", "-c", "import app; print(app.VALUE, app.__file__)"], cwd="/tmp",
                               capture_output=True, text=True)
        FINAL(probe.stdout.strip() + probe.stderr[-300:])
        """
                    )
                ],
            }
        ]
    )
    config = make_config(script, sandbox__setup="auto")
    result = engine.run(config, engine.prepare(config, str(repo)), "Probe")
    assert result.status == "completed", result.error
    (started,) = events_of(result, "setup_started")
    assert started["auto"] is True and started["commands"][0] == 'python3 -m venv "$RLM_ENV/venv"'
    assert result.answer == "edited here /rlm/checkout/app/__init__.py"


def test_without_bubblewrap_the_environment_is_still_shared(make_repo, write_script, make_config):
    repo, _ = make_repo({"a.py": "x = 1\n"})
    script = write_script(
        [
            {
                "task": ".",
                "responses": [
                    py(
                        """
        import os, subprocess
        FINAL(subprocess.run(["hello"], capture_output=True, text=True).stdout.strip() + "|" + os.environ["RLM_ENV"])
        """
                    )
                ],
            }
        ]
    )
    setup = [
        'mkdir -p "$RLM_ENV/bin" && printf \'#!/bin/sh\\necho plain hi\\n\' > "$RLM_ENV/bin/hello"',
        'chmod +x "$RLM_ENV/bin/hello"',
    ]
    config = make_config(script, sandbox__setup=setup, sandbox__isolation="none")
    result = engine.run(config, engine.prepare(config, str(repo)), "Say hi")
    assert result.status == "completed", result.error
    answer, env_path = result.answer.split("|")
    assert answer == "plain hi" and env_path.startswith(str(config.cache_root() / "envs"))


# ---------------------------------------------------------------------------- .github/rlm.yml


def test_a_repository_sets_its_setup_within_the_servers_policy():
    from bot.github.repo_config import (
        SETUP_DENIED,
        SETUP_INVALID,
        SETUP_OFFLINE,
        RepoSetup,
        apply_repo_config,
    )
    from bot.rlm import load_config

    server = load_config(None, {"sandbox.setup_timeout": 300}, environ={})
    text = "setup:\n  - pip install -e .\n  - make deps\nrlm:\n  max_depth: 1\n"
    config, notes = apply_repo_config(server, text)
    assert notes == [] and config.sandbox.setup == ["pip install -e .", "make deps"]
    assert config.sandbox.network_during_setup() and config.sandbox.setup_timeout == 300
    assert config.rlm.max_depth == 1
    assert apply_repo_config(server, "setup: auto\n")[0].sandbox.setup == "auto"
    assert apply_repo_config(server, "setup: make deps\n")[0].sandbox.setup == ["make deps"]

    config, notes = apply_repo_config(server, text, setup_policy=RepoSetup.OFFLINE)
    assert config.sandbox.setup == ["pip install -e .", "make deps"] and notes == [SETUP_OFFLINE]
    assert config.sandbox.network_during_setup() is False
    config, notes = apply_repo_config(server, text, setup_policy=RepoSetup.DENY)
    assert config.sandbox.setup == [] and notes == [SETUP_DENIED] and config.rlm.max_depth == 1
    for bad in (
        "setup: {a: 1}\n",
        "setup: [1, 2]\n",
        "setup:\n" + "  - x\n" * 21,
        f"setup: [{'x' * 2001}]\n",
    ):
        config, notes = apply_repo_config(server, bad)
        assert config.sandbox.setup == [] and notes == [SETUP_INVALID.format(n=20, chars=2000)]
    # The rest of the sandbox section stays the server's.
    config, notes = apply_repo_config(server, "sandbox:\n  setup_timeout: 99999\n")
    assert config.sandbox.setup_timeout == 300 and notes


# ---------------------------------------------------------------------------- sandbox.inherit


@needs_bwrap
def test_an_inherited_host_environment_is_read_only_and_editable_installs_resolve_to_each_checkout(
    make_repo, write_script, make_config, tmp_path
):
    import subprocess
    import sys

    # What a CI job prepares before rlm-bot: a venv with a dependency and the workspace installed
    # in editable mode (a .pth pointing at the job's checkout).
    workspace = tmp_path / "work" / "repo"
    repo, _ = make_repo({"app/__init__.py": 'VALUE = "original"\n'})
    venv = tmp_path / "jobenv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python3.*/site-packages")
    (site / "inheritedlib.py").write_text("NAME = 'from the job'\n")
    (site / "__editable__.app.pth").write_text(f"{workspace}\n")
    agent = py(
        """
        import os, shutil, subprocess
        import inheritedlib
        me = task.split()[-1]
        edit_file("app/__init__.py", "original", me)
        probe = subprocess.run(["python", "-c", "import app; print(app.VALUE)"], cwd="/tmp", capture_output=True, text=True)
        try:
            open(os.path.dirname(inheritedlib.__file__) + "/x.py", "w").write("")
            wrote = "WROTE"
        except OSError:
            wrote = "read-only"
        report = "|".join([inheritedlib.NAME, probe.stdout.strip() + probe.stderr[-200:], wrote, shutil.which("python")])
        """
    )
    script = write_script(
        [
            {
                "task": "^Root",
                "responses": [agent + py('kid = rlm_query("Child two")\nFINAL(report + ";" + kid)')],
            },
            {"task": "^Child", "responses": [agent + py("FINAL(report)")]},
        ]
    )
    config = make_config(script, sandbox__inherit=str(venv), sandbox__inherit_checkout=str(workspace))
    result = engine.run(config, engine.prepare(config, str(repo)), "Root one")
    assert result.status == "completed", result.error
    root, child = result.answer.split(";")
    assert root == f"from the job|one|read-only|{venv}/bin/python"
    assert child == f"from the job|two|read-only|{venv}/bin/python"
    assert not (site / "x.py").exists()

    bad = make_config(script, sandbox__inherit=str(tmp_path / "nothing"))
    result = engine.run(bad, engine.prepare(bad, str(repo)), "Root one")
    assert result.status == "error" and "not a Python prefix or virtualenv" in result.error


def test_the_status_comment_shows_the_setup_then_starts_the_agents():
    """Setting up…, then "Starting the agents…" only once setup is done, and the setup line no
    longer says "Setting up" after it (issue 20, item 8)."""
    from bot.github import messages
    from bot.rlm import fold, new_results

    results = new_results("r")
    assert messages.progress_line(results, 0.0, 5.0) is None  # nothing has happened yet
    fold(results, {"type": "rollout_started", "t": 1.0, "config": {"sandbox": {"setup": ["make deps"]}}})
    assert messages.progress_line(results, 0.0, 5.0) is None  # setup comes: no "Starting" before it
    fold(results, {"type": "setup_started", "t": 1.0, "commands": ["make deps"]})
    assert (
        messages.progress_line(results, 0.0, 5.0)
        == messages.STATUS_SETTING_UP
        == "🧰 Setting up the environment…"
    )
    fold(results, {"type": "setup_finished", "t": 1.2, "status": "ok", "cached": True, "duration": 0.2})
    assert (
        messages.progress_line(results, 0.0, 5.0)
        == "🧰 Environment ready (cached)\n" + messages.STATUS_STARTING
    )
    fold(results, {"type": "agent_started", "t": 1.3, "agent": "root", "depth": 0, "task": "x"})
    first, second = messages.progress_line(results, 0.0, 5.0).splitlines()
    assert first == "🧰 Environment ready (cached)"
    assert second.startswith("⏳ Running: 1 agent running, 0 finished · max depth 0 · 0 iterations")
    fold(results, {"type": "setup_finished", "t": 1.2, "status": "ok", "cached": False, "duration": 83})
    assert (
        messages.progress_line(results, 0.0, 5.0).splitlines()[0] == "🧰 Environment ready (built in 1m 23s)"
    )

    plain = new_results("r")
    fold(plain, {"type": "rollout_started", "t": 1.0, "config": {"sandbox": {"setup": []}}})
    assert messages.progress_line(plain, 0.0, 5.0) == messages.STATUS_STARTING


# ---------------------------------------------------------------------------- the Action


@needs_bwrap
def test_the_action_inherits_the_jobs_python_and_runs_setup(tmp_path):
    import subprocess
    import sys

    import yaml

    from action import messages as m
    from tests.conftest import git
    from tests.fakes.action_env import REPO, bare_remote, example, make_job
    from tests.fakes.github_fake import FakeGitHub

    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    sha = commit_files(src, {"app/__init__.py": 'VALUE = "original"\n'}, "initial")
    remote = bare_remote(src, tmp_path)
    fake = FakeGitHub()
    fake.add_repo(REPO, remote.removeprefix("file://"))
    fake.start()
    try:
        # The job's own steps: setup-python's prefix (here a venv) with the workspace installed editable.
        workspace = tmp_path / "workspace"
        prepared = tmp_path / "hostedtoolcache"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prepared)], check=True)
        (site,) = prepared.glob("lib/python3.*/site-packages")
        (site / "jobdep.py").write_text("NAME = 'job dependency'\n")
        (site / "__editable__.app.pth").write_text(f"{workspace}\n")
        script = tmp_path / "script.yaml"
        script.write_text(
            yaml.safe_dump(
                [
                    {
                        "task": ".",
                        "responses": [
                            py(
                                """
            import subprocess, jobdep
            edit_file("app/__init__.py", "original", "agent edit")
            seen = subprocess.run(["python", "-c", "import app; print(app.VALUE)"], cwd="/tmp",
                                  capture_output=True, text=True).stdout.strip()
            tool = subprocess.run(["hello"], capture_output=True, text=True).stdout.strip()
            FINAL(" | ".join([jobdep.NAME, seen, tool]))
            """
                            )
                        ],
                    }
                ]
            )
        )
        event = example("workflow_dispatch")
        event["repository"].update(full_name=REPO, clone_url=remote)
        hello = 'mkdir -p "$RLM_ENV/bin" && printf \'#!/bin/sh\\necho setup tool\\n\' > "$RLM_ENV/bin/hello"'
        job = make_job(
            tmp_path,
            fake.url,
            script,
            "workflow_dispatch",
            event,
            sha=sha,
            prompt="Probe",
            create_pr="false",
            environment="inherit",
            setup=f'{hello}\nchmod +x "$RLM_ENV/bin/hello"',
        )
        job.extra_env["pythonLocation"] = str(prepared)
        proc = job.run_here()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert job.outputs()["conclusion"] == m.CHANGES
        results = json.loads(Path(job.outputs()["results-file"]).read_text())
        assert results["answer"] == "job dependency | agent edit | setup tool"
        assert results["setup"]["status"] == "ok"

        job.extra_env.pop("pythonLocation")
        proc = job.run_here()
        assert job.outputs()["conclusion"] == m.INVALID_INPUT
        assert "this job prepared no Python" in proc.stdout
    finally:
        fake.stop()


# ---------------------------------------------------------------------------- hostile and concurrent


@needs_bwrap
def test_the_setup_sandbox_holds_no_secret_and_cancelling_stops_it(
    make_repo, write_script, make_config, monkeypatch
):
    planted = "sk-planted-setup-key-0123456789abcdef"
    monkeypatch.setenv("LLM_API_KEY", planted)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_plantedSetupToken0123456789")
    repo, _ = make_repo({"a.py": "x = 1\n"})
    script = write_script([{"task": ".", "responses": [py("FINAL('ok')")]}])
    config = make_config(script, sandbox__setup=["env | sort", "cat /proc/self/environ | tr '\\\\0' '\\\\n'"])
    result = engine.run(config, engine.prepare(config, str(repo)), "Do it")
    assert result.status == "completed", result.error
    log = events_of(result, "setup_finished")[0]["log_tail"]
    assert "RLM_ENV=/rlm/env" in log
    assert "planted" not in log and "REDACTED" not in log and "GITHUB_TOKEN" not in log

    cancel = threading.Event()
    slow = make_config(script, sandbox__setup=["echo going", "sleep 60"])
    threading.Timer(1.5, cancel.set).start()
    result = engine.run(slow, engine.prepare(slow, str(repo)), "Do it", cancel=cancel)
    assert (
        result.status == "cancelled" and result.error == "The run was cancelled during the environment setup."
    )
    assert events_of(result, "setup_finished")[0]["duration"] < 15


def test_concurrent_rollouts_build_one_environment(make_repo, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from bot.rlm.environment import SetupSpec
    from bot.rlm.sandbox.local.env import LocalEnvironments

    repo, _ = make_repo({"a.py": "x = 1\n"})
    prepared = prepare_repo(str(repo), tmp_path / "cache")
    runs = tmp_path / "runs.txt"
    spec = SetupSpec((f"echo built >> {runs}", "sleep 1"), False, 30, ())

    def get(_):
        envs = LocalEnvironments(tmp_path / "cache", keep=5)
        try:
            return envs.get(spec, "base", prepared, None, "/usr/bin:/bin", threading.Event()).cached
        finally:
            envs.release()

    with ThreadPoolExecutor(3) as pool:
        cached = sorted(pool.map(get, range(3)))
    assert cached == [False, True, True] and runs.read_text() == "built\n"


# ---------------------------------------------------------------------------- the App


@needs_bwrap
def test_the_app_runs_the_repositorys_setup_and_shows_it_in_the_status_comment(
    tmp_path, make_repo, write_script, make_config
):
    from bot.github import messages
    from bot.github.repo_config import SETUP_OFFLINE, RepoSetup
    from tests.fakes.app_env import REPO, Worlds, run_one
    from tests.fakes.github_app import comment_payload

    rules = [
        {
            "task": ".",
            "responses": [
                py(
                    """
        import subprocess
        FINAL(subprocess.run(["hello"], capture_output=True, text=True).stdout.strip() or "no tool")
        """
                )
            ],
        }
    ]
    rlm_yml = (
        'setup:\n  - mkdir -p "$RLM_ENV/bin" && printf \'#!/bin/sh\\necho from the repo setup\\n\' > "$RLM_ENV/bin/hello"\n'
        '  - chmod +x "$RLM_ENV/bin/hello"\n'
    )
    worlds = Worlds(tmp_path, make_repo, write_script, make_config)
    try:
        env = worlds(rules, files={"calc.py": "x = 1\n", ".github/rlm.yml": rlm_yml})
        payload = comment_payload("/rlm say hi", number=3, clone_url=str(env.bare))
        job = run_one(env, "issue_comment", payload)
        assert job.outcome == "answer", job
        results = env.results(job)
        assert results["answer"] == "from the repo setup"
        assert results["setup"]["status"] == "ok" and results["setup"]["cached"] is False
        edits = [
            c.body["body"]
            for c in env.fake.calls
            if c.method in ("POST", "PATCH")
            and "/comments" in c.path
            and isinstance(c.body, dict)
            and "body" in c.body
        ]
        assert any(messages.STATUS_SETTING_UP in body for body in edits)

        again = run_one(
            env, "issue_comment", comment_payload("/rlm say hi again", number=3, clone_url=str(env.bare))
        )
        assert env.results(again)["setup"]["cached"] is True
        edits = [
            c.body["body"]
            for c in env.fake.calls
            if c.method == "PATCH" and "/comments/" in c.path and isinstance(c.body, dict)
        ]
        assert any("🧰 Environment ready (cached)" in body for body in edits)

        # A server that runs repositories' setup offline says so in the status comment.
        env.server.worker.repo_setup = RepoSetup.OFFLINE
        third = run_one(
            env, "issue_comment", comment_payload("/rlm once more", number=3, clone_url=str(env.bare))
        )
        assert env.results(third)["config"]["sandbox"]["setup_network"] is False
        assert SETUP_OFFLINE in env.fake.issue_comments(REPO, 3)[-1]["body"]
    finally:
        worlds.close()


def test_the_server_setting_for_repositories_setup_is_checked():
    from bot.github.auth import AppSettingsError
    from bot.github.repo_config import BAD_REPO_SETUP, RepoSetup
    from webhooks.settings import _repo_setup

    assert _repo_setup(None) is RepoSetup.ALLOW and _repo_setup("") is RepoSetup.ALLOW
    assert _repo_setup(" Deny ") is RepoSetup.DENY and _repo_setup("offline") is RepoSetup.OFFLINE
    with pytest.raises(AppSettingsError) as e:
        _repo_setup("sometimes")
    assert str(e.value) == BAD_REPO_SETUP.format(value="sometimes")


def test_action_inputs_for_the_environment():
    from action.inputs import INHERIT_NOT_ON_DAYTONA, NO_PREPARED_PYTHON, InputError, InputReader, Inputs

    def read(**inputs):
        environ = {
            "GITHUB_WORKSPACE": "/home/runner/work/r/r",
            "pythonLocation": "/opt/hostedtoolcache/Python/3.12",
        }
        environ.update({"INPUT_" + k.upper(): v for k, v in inputs.items() if k != "env"})
        environ.update(inputs.get("env", {}))
        return Inputs.read(InputReader(environ)).config_overrides()

    got = read(setup='python3 -m venv "$RLM_ENV/venv"\n\n  make deps  \n', environment="inherit")
    assert got["sandbox.setup"] == ['python3 -m venv "$RLM_ENV/venv"', "make deps"]
    assert got["sandbox.inherit"] == "/opt/hostedtoolcache/Python/3.12"
    assert got["sandbox.inherit_checkout"] == "/home/runner/work/r/r"
    assert read(setup="auto")["sandbox.setup"] == "auto" and read()["sandbox.setup"] is None
    assert read(environment="inherit", env={"VIRTUAL_ENV": "/w/.venv"})["sandbox.inherit"] == "/w/.venv"
    assert read(environment="none")["sandbox.inherit"] is None and read()["sandbox.inherit_checkout"] is None
    for bad, message in [
        ({"environment": "inherit", "env": {"pythonLocation": ""}}, NO_PREPARED_PYTHON),
        ({"environment": "inherit", "sandbox": "daytona"}, INHERIT_NOT_ON_DAYTONA),
        ({"environment": "relative/venv"}, "input 'environment' must be none, inherit"),
    ]:
        with pytest.raises(InputError) as e:
            read(**bad)
        assert str(e.value).startswith(message)


@needs_bwrap
def test_setup_gets_the_named_host_variables_and_the_ca_bundle_only(
    make_repo, write_script, make_config, monkeypatch, tmp_path
):
    """Behind a proxy or a private index: sandbox.setup_env passes the named host variables to setup
    (and to no agent), sandbox.setup_ca_bundle is readable there with every CA variable on it; the
    values never reach a log or an event."""
    repo, _ = make_repo({"a.py": "x = 1\n"})
    monkeypatch.setenv("PIP_INDEX_URL", "https://user:idx-s3cret-77@pypi.internal/simple")
    monkeypatch.setenv("NOT_NAMED", "must-not-pass")
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nCORP\n-----END CERTIFICATE-----\n")
    script = write_script(
        [{"task": ".", "responses": [py("import os; FINAL(str(os.environ.get('PIP_INDEX_URL')))")]}]
    )
    config = make_config(
        script,
        sandbox__setup=[
            'case "$PIP_INDEX_URL" in https://user:*@pypi.internal/simple) ;; *) exit 9 ;; esac',
            'test -z "$NOT_NAMED"',
            'for v in SSL_CERT_FILE PIP_CERT REQUESTS_CA_BUNDLE; do eval f=\\$$v; grep -q CORP "$f"; done',
            'echo "index is $PIP_INDEX_URL"',
        ],
        sandbox__setup_env=["PIP_INDEX_URL", "UNSET_ONE"],
        sandbox__setup_ca_bundle=str(bundle),
    )
    result = engine.run(config, engine.prepare(config, str(repo)), "Do it")
    assert result.status == "completed", result.error
    assert result.answer == "None"  # an agent never sees what setup was given
    events = Path(result.events_path).read_text()
    leaked = [line[:300] for line in events.splitlines() if "idx-s3cret-77" in line]
    assert not leaked and "index is" in events, leaked  # the log tail, masked


@needs_bwrap
def test_a_setup_failure_says_once_whether_the_network_or_the_command_failed(
    make_repo, write_script, tmp_path
):
    from bot.rlm.environment import CAUSE_COMMAND, CAUSE_NETWORK
    from tests.test_cli import rlm

    repo, _ = make_repo({"a.py": "x = 1\n"})
    agent = write_script([{"task": ".", "responses": [py("FINAL('no')")]}])
    args = ["run", str(repo), "-p", "x", "--model", f"scripted/{agent}", "--results-dir", str(tmp_path / "r")]
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    tls = "echo 'SSL: CERTIFICATE_VERIFY_FAILED certificate verify failed: unable to get local issuer' >&2; exit 1"
    proc = rlm(*args, "--setup", tls, cwd=tmp_path, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert CAUSE_NETWORK.format(evidence="certificate verify failed") in proc.stderr
    tail_line = "SSL: CERTIFICATE_VERIFY_FAILED certificate verify failed: unable to get local issuer"
    assert proc.stderr.splitlines().count(tail_line) == 1, proc.stderr  # the log tail, once
    proc = rlm(*args, "--setup", "echo 'tests failed: 3' >&2; exit 2", cwd=tmp_path, env=env)
    assert proc.returncode == 1 and CAUSE_COMMAND in proc.stderr
    assert proc.stderr.splitlines().count("tests failed: 3") == 1, proc.stderr
