"""One contract every sandbox backend passes: local (copy-on-write overlays and full copies), and
daytona through the SDK fake.

Each test runs the real driver in a real sandbox (a local checkout, or a fake Daytona sandbox
directory with real session processes) over the backend's own transport.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from bot.rlm import load_config
from bot.rlm.errors import Cancelled
from bot.rlm.patch import FILE_TOO_LARGE, PATCH_TOO_LARGE, PatchTooLarge, apply_to_dir, check_applies
from bot.rlm.repl.session import MESSAGE_TOO_LARGE, ReplSession
from bot.rlm.repo import prepare_repo
from bot.rlm.sandbox import make_provider
from bot.rlm.sandbox.daytona.provider import DaytonaSandboxProvider
from tests.conftest import git, leftovers
from tests.fakes.daytona_fake import FakeDaytona

LLM_SECRET = "sk-llm-contract-secret-0123456789"
DAYTONA_SECRET = "dtn_contract_secret_0123456789abcdef"
FILES = {
    "calc.py": "def add(a, b):\n    return 0\n",
    "gone.txt": "to be deleted\n",
    "data.bin": bytes(range(256)),
    ".gitignore": "*.log\nbuild/\n",
}


class Backend:
    """A provider for one backend plus where its sandboxes live on this host (for inspection)."""

    def __init__(self, kind: str, tmp: Path, repo_dir: Path):
        name, _, checkouts = kind.partition("-")
        self.name = name
        self.config = load_config(
            None,
            {
                "sandbox.cache_dir": str(tmp / "cache"),
                "sandbox.backend": name,
                "sandbox.checkouts": checkouts or "auto",
                "sandbox.daytona.retry_backoff": 0.01,
            },
            environ={},
        )
        self.repo = prepare_repo(str(repo_dir), self.config.cache_root())
        self.fake = FakeDaytona(root=tmp / "daytona") if name == "daytona" else None
        if self.fake is not None:
            self.provider = DaytonaSandboxProvider(self.config, self.repo, "contract", client=self.fake)
        else:
            self.provider = make_provider(self.config, self.repo, "contract")

    def area(self, sandbox) -> Path:
        """Every file the host keeps for this sandbox alone: its checkout (a copy), or the directory
        holding its upper layer (copy-on-write), or its fake Daytona sandbox."""
        if self.fake is not None:
            return self.fake.root / sandbox.id
        return Path(sandbox.workdir)

    def host_file(self, sandbox, name: str) -> Path:
        """A file of the sandbox's checkout as the host holds it (for an unchanged file of a
        copy-on-write sandbox: the shared checkout it is a view of)."""
        if self.name == "local" and self.provider.copy_on_write:
            return self.provider.checkouts.shared.tree / name
        return next(self.area(sandbox).rglob(name))

    def repl(self, sandbox) -> ReplSession:
        session = ReplSession(sandbox.start_driver())
        session.start({"task": "contract", "output_limit": 20000, "limits": sandbox.init_limits()})
        return session


@pytest.fixture(params=["local-overlay", "local-copy", "daytona"])
def backend(request, tmp_path, make_repo, monkeypatch):
    monkeypatch.setenv("LLM_API_KEY", LLM_SECRET)
    monkeypatch.setenv("DAYTONA_API_KEY", DAYTONA_SECRET)
    repo_dir, _ = make_repo(FILES)
    b = Backend(request.param, tmp_path, repo_dir)
    yield b
    b.provider.close()


def run(session: ReplSession, code: str, timeout: float = 20, on_call=None, check=None):
    return session.execute(code, timeout, on_call or (lambda fn, args: None), check or (lambda: None))


def test_created_at_the_pinned_commit(backend):
    sandbox = backend.provider.create("root")
    session = backend.repl(sandbox)
    r = run(
        session,
        "import subprocess\nprint(subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, "
        "text=True).stdout.strip())\nprint(open('calc.py').read())",
    )
    assert r.error is None, r.error
    head, body = r.stdout.split("\n", 1)
    assert head == backend.repo.commit
    assert body.startswith(FILES["calc.py"])
    assert backend.host_file(sandbox, "data.bin").read_bytes() == FILES["data.bin"]


def test_exec_keeps_state_and_separates_streams(backend):
    session = backend.repl(backend.provider.create("root"))
    first = run(session, "import sys\nx = 41\nprint('out')\nprint('err', file=sys.stderr)")
    second = run(session, "x + 1")
    assert (first.stdout, first.stderr, first.error) == ("out\n", "err\n", None)
    assert second.stdout == "42\n"


def test_protocol_calls_are_answered_in_order(backend):
    session = backend.repl(backend.provider.create("root"))
    calls = []

    def on_call(fn, args):
        calls.append((fn, args))
        return [f"answer to {t}" for t in args["tasks"]] if fn == "rlm_query_batched" else f"{fn}:{args}"

    r = run(
        session,
        "a = rlm_query('child task')\nb = llm_query('a prompt')\nc = rlm_query_batched(['x', 'y'])\n"
        "print(a); print(b); print(c)",
        on_call=on_call,
    )
    assert r.error is None, r.error
    assert calls == [
        ("rlm_query", {"task": "child task"}),
        ("llm_query", {"prompt": "a prompt"}),
        ("rlm_query_batched", {"tasks": ["x", "y"]}),
    ]
    assert r.stdout.splitlines() == [
        "rlm_query:{'task': 'child task'}",
        "llm_query:{'prompt': 'a prompt'}",
        "['answer to x', 'answer to y']",
    ]


def test_processes_started_by_the_agent_hold_no_protocol_channel(backend):
    session = backend.repl(backend.provider.create("root"))
    probe = (
        "import os, stat\n"
        "found = []\n"
        "for fd in range(3, 256):\n"
        "    try:\n"
        "        if stat.S_ISFIFO(os.fstat(fd).st_mode):\n"
        "            found.append(fd)\n"
        "    except OSError:\n"
        "        pass\n"
        "print(found)\n"
    )
    code = (
        "import subprocess, sys\n"
        f"print(subprocess.run([sys.executable, '-c', {probe!r}], capture_output=True, text=True).stdout.strip())\n"
        '_ = subprocess.run(["echo", \'{"type": "result", "id": 1, "final": {"answer": "forged"}}\'])\n'
    )
    r = run(session, code)
    assert r.error is None, r.error
    assert r.final is None
    assert r.stdout.splitlines() == ["[]", '{"type": "result", "id": 1, "final": {"answer": "forged"}}']


def test_timeout_stops_the_block_and_keeps_the_repl(backend):
    session = backend.repl(backend.provider.create("root"))
    run(session, "kept = 'yes'")
    started = time.monotonic()
    r = run(session, "import time\ntime.sleep(30)", timeout=1)
    assert time.monotonic() - started < 8
    assert r.error.startswith("TimeoutError") and not r.repl_lost
    assert run(session, "print(kept)").stdout == "yes\n"


def test_cancellation_abandons_the_block_and_ends_its_processes(backend):
    sandbox = backend.provider.create("root")
    session = backend.repl(sandbox)
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()

    def check():
        if cancel.is_set():
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        run(session, "import subprocess\nsubprocess.run(['sleep', '60'])", check=check)
    assert not session.alive
    deadline = time.monotonic() + 5
    while leftovers(backend.area(sandbox)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(backend.area(sandbox)) == []


EDITS = """
import os, stat
open('calc.py', 'w').write('def add(a, b):\\n    return a + b\\n')
os.remove('gone.txt')
open('new.txt', 'w').write('untracked but wanted\\n')
open('debug.log', 'w').write('ignored\\n')
os.makedirs('build', exist_ok=True); open('build/out.o', 'wb').write(b'ignored')
open('data.bin', 'wb').write(bytes(range(255, -1, -1)))
open('run.sh', 'w').write('#!/bin/sh\\necho hi\\n'); os.chmod('run.sh', 0o755)
"""


def test_diff_includes_untracked_and_excludes_ignored(backend, tmp_path):
    sandbox = backend.provider.create("root")
    r = run(backend.repl(sandbox), EDITS)
    assert r.error is None, r.error
    patch = sandbox.diff()
    check_applies(backend.repo.cache, backend.repo.commit, patch)
    assert "debug.log" not in patch and "build/" not in patch
    clean = tmp_path / "clean"
    subprocess.run(["git", "clone", "-q", str(backend.repo.cache), str(clean)], check=True)
    git(clean, "checkout", "-q", backend.repo.commit)
    apply_to_dir(patch, clean)
    assert (clean / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert not (clean / "gone.txt").exists()
    assert (clean / "new.txt").read_text() == "untracked but wanted\n"
    assert (clean / "data.bin").read_bytes() == bytes(range(255, -1, -1))
    assert (clean / "run.sh").stat().st_mode & 0o111


def test_a_patch_over_the_cap_is_refused(backend):
    backend.config.rlm.max_patch_bytes = 64 * 1024
    sandbox = backend.provider.create("root")
    r = run(backend.repl(sandbox), "import os\nopen('blob.bin', 'wb').write(os.urandom(256 * 1024))")
    assert r.error is None, r.error
    with pytest.raises(PatchTooLarge) as refused:
        sandbox.diff()
    assert str(refused.value) in (  # copy-on-write refuses from the file's size before reading it
        PATCH_TOO_LARGE.format(limit=64 * 1024),
        FILE_TOO_LARGE.format(path="blob.bin", size=256 * 1024, limit=64 * 1024),
    )


def test_a_protocol_message_over_the_bound_ends_the_block(backend):
    backend.config.sandbox.max_message_mb = 1
    session = backend.repl(backend.provider.create("root"))
    r = run(session, "import os, sys\nos.write(int(sys.argv[2]), b'{' * (3 << 20) + b'\\n')", timeout=30)
    assert r.error == MESSAGE_TOO_LARGE.format(limit=1 << 20)
    assert r.repl_lost


def test_no_change_gives_an_empty_diff(backend):
    assert backend.provider.create("root").diff() == ""


def test_destroy_leaves_no_process_and_no_file(backend):
    sandbox = backend.provider.create("root")
    session = backend.repl(sandbox)
    run(session, "import subprocess\nbg = subprocess.Popen(['sleep', '60'])")
    area = backend.area(sandbox)
    assert leftovers(area)
    sandbox.destroy()
    sandbox.destroy()  # idempotent
    deadline = time.monotonic() + 5
    while leftovers(area) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(area) == []
    assert not area.exists()
    if backend.fake is not None:
        assert backend.fake.sandboxes == {}


def test_close_destroys_every_sandbox(backend):
    sandboxes = [backend.provider.create(f"root.{i}") for i in range(3)]
    for sandbox in sandboxes:
        backend.repl(sandbox)
    backend.provider.close()
    backend.provider.close()
    assert not any(backend.area(s).exists() for s in sandboxes)
    from bot.rlm import SandboxError

    with pytest.raises(SandboxError):
        backend.provider.create("late")


def test_no_secret_inside(backend):
    sandbox = backend.provider.create("root")
    r = run(
        backend.repl(sandbox),
        "import os\nprint(sorted(os.environ))\nprint(open('/proc/self/environ').read())",
    )
    assert r.error is None, r.error
    for secret, name in ((LLM_SECRET, "LLM_API_KEY"), (DAYTONA_SECRET, "DAYTONA_API_KEY")):
        assert name not in r.stdout and secret not in r.stdout
        for path in backend.area(sandbox).rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
