"""Copy-on-write local sandboxes: what overlays make tricky, against real mounts and real drivers.

Each patch test runs the same edits in a copy-on-write sandbox and in a full copy and asserts the
two patches are identical (the copy is the reference the rest of rlm-bot was built on).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.rlm import SandboxError, load_config
from bot.rlm.patch import apply_to_dir, check_applies
from bot.rlm.repl.session import ReplSession
from bot.rlm.repo import prepare_repo
from bot.rlm.sandbox.local import provider as local
from bot.rlm.sandbox.local.checkout import overlay
from bot.rlm.sandbox.local.checkout import shared as shared_checkouts
from bot.rlm.sandbox.local.provider import LocalSandboxProvider
from tests.conftest import git

FILES = {
    "calc.py": "def add(a, b):\n    return 0\n",
    "gone.txt": "to be deleted\n",
    "old_name.txt": "moving\n",
    "tool.sh": "#!/bin/sh\necho tool\n",
    "rewrite.txt": "line 1\nline 2\n",
    "pkg/__init__.py": "",
    "pkg/mod.py": "X = 1\n",
    "pkg/deep/leaf.txt": "leaf\n",
    "notes.md": "notes\n",
    ".gitignore": "*.log\nbuild/\n",
}
HOST_SECRET = "host-only-secret-5f1d0c"


def provider(tmp_path: Path, repo_dir: Path, mode: str, rollout: str = "r", **extra) -> LocalSandboxProvider:
    values = {"sandbox.cache_dir": str(tmp_path / "cache"), "sandbox.checkouts": mode, **extra}
    config = load_config(None, values, environ={})
    return LocalSandboxProvider(config, prepare_repo(str(repo_dir), config.cache_root()), rollout)


def repl(sandbox) -> ReplSession:
    session = ReplSession(sandbox.start_driver())
    session.start({"task": "overlay", "output_limit": 20000, "limits": sandbox.init_limits()})
    return session


def run(session: ReplSession, code: str) -> str:
    r = session.execute(code, 30, lambda fn, args: None, lambda: None)
    assert r.error is None, r.error
    return r.stdout


@pytest.fixture
def repo(make_repo):
    repo_dir, _ = make_repo(FILES)
    os.chmod(repo_dir / "tool.sh", 0o755)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "exec bit")
    return repo_dir


@pytest.fixture
def both(tmp_path, repo):
    providers = {mode: provider(tmp_path / mode, repo, mode) for mode in ("overlay", "copy")}
    assert providers["overlay"].copy_on_write and not providers["copy"].copy_on_write
    yield providers
    for p in providers.values():
        p.close()


EDITS = {
    "deleted file": "import os; os.remove('gone.txt')",
    "renamed file": "import os; os.rename('old_name.txt', 'new_name.txt')",
    "mode change": "import os; os.chmod('tool.sh', 0o644); os.chmod('notes.md', 0o755)",
    "new symlink": "import os; os.symlink('calc.py', 'calc_link.py'); os.symlink('/etc/passwd', 'abs_link')",
    "rewritten in place": "f = open('rewrite.txt', 'r+'); f.seek(5); f.write('X'); f.close()",
    "directory replaced by a file": "import shutil; shutil.rmtree('pkg'); open('pkg', 'w').write('now a file\\n')",
    "file replaced by a directory": "import os; os.remove('notes.md'); os.makedirs('notes.md/inner'); "
    "open('notes.md/inner/x.txt', 'w').write('x\\n')",
    "directory moved": "import shutil; shutil.move('pkg', 'lib')",
    "untracked and ignored": "import os; open('new.txt', 'w').write('new\\n'); open('debug.log', 'w').write('i');"
    " os.makedirs('build'); open('build/o', 'w').write('i'); open('pkg/deep/.gitignore', 'w').write('*.tmp\\n');"
    " open('pkg/deep/a.tmp', 'w').write('i'); open('pkg/deep/b.txt', 'w').write('kept\\n')",
    "deleted then recreated identical": "import os; os.remove('calc.py'); open('calc.py', 'w').write("
    + repr(FILES["calc.py"])
    + ")",
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_each_change_comes_out_exactly_as_with_a_copy(both, repo, tmp_path, edit):
    patches = {}
    for mode, p in both.items():
        sandbox = p.create("root")
        run(repl(sandbox), EDITS[edit])
        patches[mode] = sandbox.diff()
    assert patches["overlay"] == patches["copy"]
    if edit == "deleted then recreated identical":
        assert patches["overlay"] == ""
        return
    assert patches["overlay"].startswith("diff --git")
    prepared = both["overlay"].repo
    check_applies(prepared.cache, prepared.commit, patches["overlay"])
    clean = tmp_path / "clean"
    subprocess.run(["git", "clone", "-q", str(repo), str(clean)], check=True)
    apply_to_dir(patches["overlay"], clean)


def test_all_changes_at_once_match_a_copy_and_git_works_inside(both):
    code = "\n".join(
        EDITS[e]
        for e in (
            "deleted file",
            "renamed file",
            "mode change",
            "new symlink",
            "rewritten in place",
            "untracked and ignored",
        )
    )
    patches, statuses = {}, {}
    for mode, p in both.items():
        sandbox = p.create("root")
        session = repl(sandbox)
        run(session, code)
        statuses[mode] = run(
            session,
            "import subprocess as s\n"
            "for c in (['status', '--porcelain'], ['diff', '--stat'], ['grep', '-l', 'add'],"
            " ['log', '--format=%H']):\n"
            "    print(s.run(['git', *c], capture_output=True, text=True).stdout)",
        )
        patches[mode] = sandbox.diff()
    assert patches["overlay"] == patches["copy"]
    assert statuses["overlay"] == statuses["copy"]
    assert " D gone.txt" in statuses["overlay"] and "?? new.txt" in statuses["overlay"]
    assert both["overlay"].repo.commit in statuses["overlay"]


def test_siblings_writing_the_same_path_do_not_see_each_other(both):
    p = both["overlay"]
    a, b = p.create("root.1"), p.create("root.2")
    ra, rb = repl(a), repl(b)
    run(ra, "open('calc.py', 'w').write('A\\n'); open('shared.txt', 'w').write('from a\\n')")
    run(rb, "open('calc.py', 'w').write('B\\n')")
    assert run(ra, "print(open('calc.py').read(), end='')") == "A\n"
    assert run(rb, "import os; print(open('calc.py').read(), os.path.exists('shared.txt'))") == "B\n False\n"
    assert "+A" in a.diff() and "+B" in b.diff() and "shared.txt" not in b.diff()
    child = p.create("root.1.1")  # a child starts from the commit, not from its parent's changes
    assert run(repl(child), "print(open('calc.py').read(), end='')") == FILES["calc.py"]


def test_the_agent_cannot_reach_the_shared_checkout(both):
    p = both["overlay"]
    lower = p.checkouts.shared.tree
    sandbox = p.create("root")
    out = run(
        repl(sandbox),
        f"import os\nlower = {str(lower)!r}\nprint(os.path.exists(lower))\n"
        "try:\n    open(lower + '/calc.py', 'w').write('owned')\nexcept OSError as e:\n"
        "    print(type(e).__name__)\n"
        "_ = open('calc.py', 'w').write('mine\\n')\n",
    )
    assert out == "False\nFileNotFoundError\n"
    assert (lower / "calc.py").read_text() == FILES["calc.py"]
    assert (sandbox.checkout.upper / "calc.py").read_text() == "mine\n"


def test_the_host_does_not_follow_links_the_agent_made(both, tmp_path):
    secret_dir = tmp_path / "host-secrets"
    secret_dir.mkdir()
    (secret_dir / "key.txt").write_text(HOST_SECRET)
    p = both["overlay"]
    sandbox = p.create("root")
    run(
        repl(sandbox),
        f"import os\nos.symlink({str(secret_dir / 'key.txt')!r}, 'key.txt')\n"
        f"os.symlink({str(secret_dir)!r}, 'secrets')\n"
        f"os.remove('.gitignore'); os.symlink({str(secret_dir / 'key.txt')!r}, '.gitignore')",
    )
    patch = sandbox.diff()
    assert HOST_SECRET not in patch
    assert "new file mode 120000" in patch and str(secret_dir / "key.txt") in patch
    # The agent swaps a directory of its upper layer for a link to a host directory: still nothing.
    upper = sandbox.checkout.upper  # the upper layer as the host reads it (through the layer holder)
    (upper / "pkg").mkdir()
    (upper / "pkg" / "mod.py").write_text("X = 2\n")
    os.rename(upper / "pkg", upper / "pkg.real")
    os.symlink(secret_dir, upper / "pkg")
    assert HOST_SECRET not in sandbox.diff()


def test_the_fallback_is_taken_and_said_once_when_mounts_are_refused(tmp_path, repo, monkeypatch, caplog):
    # The kernel itself refuses: an option no overlayfs knows.
    monkeypatch.setattr(overlay, "MOUNT_OPTIONS", overlay.MOUNT_OPTIONS + ",no_such_overlay_option")
    monkeypatch.setattr(local, "COPY_WARNED", local.threading.Event())
    overlay.forget_probes()
    caplog.set_level(logging.WARNING, logger=local.__name__)
    try:
        first = provider(tmp_path / "a", repo, "auto")
        second = provider(tmp_path / "b", repo, "auto")
        assert not first.copy_on_write and not second.copy_on_write
        warnings = [r.getMessage() for r in caplog.records if "copy-on-write" in r.getMessage()]
        prefix = local.COPY_FALLBACK_WARNING.split("{reason}")[0]
        assert len(warnings) == 1 and warnings[0].startswith(prefix)
        sandbox = first.create("root")
        run(repl(sandbox), "open('calc.py', 'w').write('copied\\n')")
        assert "+copied" in sandbox.diff()
        with pytest.raises(SandboxError) as err:
            provider(tmp_path / "c", repo, "overlay")
        assert str(err.value).startswith(local.OVERLAY_REQUIRED_ERROR.split("{reason}")[0])
        first.close()
        second.close()
    finally:
        overlay.forget_probes()


def test_the_shared_checkout_is_reused_bounded_and_reaped(tmp_path, make_repo):
    repo_dir, first_sha = make_repo({"a.txt": "1\n"})
    cache = tmp_path / "shared"
    p1 = provider(cache, repo_dir, "overlay", rollout="one")
    tree = p1.checkouts.shared.tree
    marker = os.stat(tree / "a.txt").st_ino
    p1.close()
    p2 = provider(cache, repo_dir, "overlay", rollout="two", **{"sandbox.checkout_cache": 1})
    assert p2.checkouts.shared.tree == tree and os.stat(tree / "a.txt").st_ino == marker  # not rebuilt
    git(repo_dir, "commit", "-q", "--allow-empty", "-m", "next")
    p3 = provider(cache, repo_dir, "overlay", rollout="three", **{"sandbox.checkout_cache": 1})
    assert p3.checkouts.shared.tree != tree
    assert tree.exists()  # in use by p2: never evicted under a running rollout
    p2.close()
    p3.close()
    root = shared_checkouts.cache_dir(cache / "cache")
    assert [d.name for d in root.iterdir() if d.is_dir()] == [p3.checkouts.shared.tree.parent.name]
    assert shared_checkouts.evict(cache / "cache", keep=0) == [p3.checkouts.shared.tree.parent.name]
    assert not any(d.is_dir() for d in root.iterdir())
    assert first_sha


UNPRIVILEGED_RUN = """
import os, subprocess, sys
from pathlib import Path
from bot.rlm.config import load_config
from bot.rlm.repl.session import ReplSession
from bot.rlm.repo import prepare_repo
from bot.rlm.sandbox.local.provider import LocalSandboxProvider

home = Path(sys.argv[1])
env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
repo = home / "repo"
repo.mkdir()
(repo / "a.txt").write_text("a\\n")
(repo / "d").mkdir()
(repo / "d" / "b.txt").write_text("b\\n")
for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "i"]):
    subprocess.run(["git", *cmd], cwd=repo, env=env, check=True)
config = load_config(None, {"sandbox.cache_dir": str(home / "cache"), "sandbox.work_dir": str(home / "work"),
                            "sandbox.checkouts": "overlay"}, environ={})
p = LocalSandboxProvider(config, prepare_repo(str(repo), config.cache_root()), "unpriv")
sandbox = p.create("root")
session = ReplSession(sandbox.start_driver())
session.start({"task": "t", "output_limit": 20000, "limits": sandbox.init_limits()})
r = session.execute("import os, shutil\\nos.remove('a.txt'); shutil.rmtree('d'); os.mkdir('d')\\n"
                    "_ = open('d/c.txt', 'w').write('c\\\\n')", 30, lambda f, a: None, lambda: None)
assert r.error is None, r.error
print(p.copy_on_write, os.getuid())
print(sandbox.diff())
p.close()
"""


def _python_for(uid: int) -> str | None:
    """An interpreter of this version that `uid` may run (ours may live under root's home)."""
    for exe in (sys.executable, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"):
        try:
            ok = subprocess.run([exe, "-c", "pass"], user=uid, group=uid, extra_groups=[], timeout=30)
        except OSError:
            continue
        if ok.returncode == 0:
            return exe
    return None


def _readable_packages(dest: Path) -> Path:
    """The third-party packages the run below imports, copied where the unprivileged user can read
    them (this interpreter's site-packages may sit under root's private home, as in CI)."""
    import shutil
    import sysconfig

    probe = (
        "import sys, bot.rlm.config, bot.rlm.repl.session, bot.rlm.repo, bot.rlm.sandbox.local.provider\n"
        "print('\\n'.join(m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None)))"
    )
    files = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    sites = {Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}
    dest.mkdir()
    for file in map(Path, files):
        for site in sites:
            if file.is_relative_to(site):
                top = site / file.relative_to(site).parts[0]
                target = dest / top.name
                if top.name.startswith("__editable__") or target.exists():
                    continue
                (shutil.copytree if top.is_dir() else shutil.copy)(top, target)
    return dest


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to an unprivileged user; needs root to do so")
def test_copy_on_write_works_for_an_unprivileged_user():
    import tempfile

    python = _python_for(65534)
    if python is None:
        pytest.skip("no interpreter of this version that an unprivileged user may run")
    home = Path(tempfile.mkdtemp(prefix="rlm-unpriv-"))
    try:
        os.chmod(home, 0o755)
        os.chown(home, 65534, 65534)
        root = Path(__file__).resolve().parent.parent
        path = f"{root}:{_readable_packages(home / 'site')}"
        proc = subprocess.run(
            [python, "-c", UNPRIVILEGED_RUN, str(home)],
            user=65534,
            group=65534,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=home,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": path},
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        first, patch = proc.stdout.split("\n", 1)
        assert first == "True 65534"  # copy-on-write, through a user namespace
        assert "deleted file mode 100644" in patch and "a/a.txt" in patch and "a/d/b.txt" in patch
        assert "+++ b/d/c.txt" in patch
    finally:
        subprocess.run(["rm", "-rf", str(home)], check=False)


def test_the_cli_says_once_that_it_falls_back_to_copies(make_repo, write_script, tmp_path):
    from tests.conftest import py

    repo_dir, _ = make_repo({"a.txt": "a\n"})
    script = write_script(
        [
            {
                "task": "^Root",
                "responses": [
                    py("print(rlm_query_batched(['Child 1', 'Child 2']))"),
                    py('open("a.txt", "w").write("b\\n")\nFINAL("ok")'),
                ],
            },
            {"task": "^Child", "responses": [py('FINAL("done")')]},
        ]
    )
    # A comma in the work directory cannot be carried in overlay mount options: a real refusal.
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        "RLM_SANDBOX__WORK_DIR": str(tmp_path / "odd,dir"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "run",
            str(repo_dir),
            "-p",
            "Root",
            "--model",
            f"scripted/{script}",
            "-q",
            "--results-dir",
            str(tmp_path / "r"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "+b" in proc.stdout
    prefix = local.COPY_FALLBACK_WARNING.split(" ({reason})")[0]
    assert proc.stderr.count(prefix) == 1, proc.stderr
    assert "overlay options cannot carry" in proc.stderr
