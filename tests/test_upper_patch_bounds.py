"""The copy-on-write patch builder against a hostile upper layer: it reads the layer exactly as the
mount did, and its memory is bounded by rlm.max_patch_bytes whatever the agent wrote; and the upper
layer itself is capped (sandbox.checkout_mb).

Memory is measured in a child process (its peak RSS, VmHWM, and its git children's), with an
address-space limit so a builder that reads everything fails fast instead of filling the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.rlm import load_config
from bot.rlm.patch import FILE_TOO_LARGE, patch_stats
from bot.rlm.repl.session import ReplSession
from bot.rlm.repo import prepare_repo
from bot.rlm.sandbox.local.provider import LocalSandboxProvider

GIB = 1024**3
MAX_PATCH = 20_000_000
ADDRESS_LIMIT = 900 * 1024**2  # the child may not map more: a builder reading 1 GiB fails fast
PEAK_LIMIT_MB = 200

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    from bot.rlm.patch import PatchTooLarge, check_applies, patch_stats
    from bot.rlm.sandbox.local.checkout.upper_patch import diff_upper
    out = {{}}
    try:
        patch = diff_upper(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], {max_bytes})
        out["patch"] = patch if len(patch) < 10000 else patch[:10000]
        out["patch_len"] = len(patch)
        out["paths"] = patch_stats(patch).paths
        check_applies(Path(sys.argv[2]), sys.argv[3], patch)  # what a rollout does with the root's
    except PatchTooLarge as e:
        out["refused"] = str(e)
    except MemoryError:
        out["refused"] = "MemoryError"
    peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    out["peak_mb"] = int(peak) // 1024
    out["children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    print(json.dumps(out))
    """
)


def build_in_child(upper: Path, repo, max_bytes: int | None = MAX_PATCH) -> dict:
    code = CHILD.format(limit=ADDRESS_LIMIT, max_bytes=max_bytes)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(upper), str(repo.cache), repo.commit],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture
def prepared(make_repo, tmp_path):
    repo_dir, _ = make_repo({"README.md": "# demo\n", ".gitignore": "build/\n", "src/app.py": "x = 1\n"})
    return prepare_repo(str(repo_dir), tmp_path / "cache")


def sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


def test_a_sparse_gigabyte_is_refused_from_its_size_without_being_read(prepared, tmp_path):
    upper = tmp_path / "upper"
    sparse(upper / "huge.bin", GIB)
    (upper / "src").mkdir()
    (upper / "src" / "app.py").write_text("x = 2\n")
    out = build_in_child(upper, prepared)
    assert out["refused"] == FILE_TOO_LARGE.format(path="huge.bin", size=GIB, limit=MAX_PATCH)
    assert out["peak_mb"] < PEAK_LIMIT_MB and out["children_mb"] < PEAK_LIMIT_MB, out


def test_an_ignored_sparse_gigabyte_is_never_read_and_the_patch_is_kept(prepared, tmp_path):
    upper = tmp_path / "upper"
    sparse(upper / "build" / "huge.bin", GIB)  # a build artifact in a directory .gitignore names
    (upper / "src").mkdir()
    (upper / "src" / "app.py").write_text("x = 2\n")
    out = build_in_child(upper, prepared)
    assert "refused" not in out, out
    assert out["paths"] == ["src/app.py"]
    assert out["peak_mb"] < PEAK_LIMIT_MB and out["children_mb"] < PEAK_LIMIT_MB, out


def test_a_large_patch_costs_a_small_multiple_of_its_size(prepared, tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "blob.bin").write_bytes(os.urandom(24 * 1024**2))  # incompressible: a ~31 MB binary patch
    out = build_in_child(upper, prepared, max_bytes=64 * 1024**2)
    assert "refused" not in out, out
    patch_mb = out["patch_len"] / 1024**2
    assert 28 < patch_mb < 40
    assert out["peak_mb"] < 40 + 2.5 * patch_mb, out  # the joined output and its text, not a growing copy
    assert out["children_mb"] < 40 + 2.5 * patch_mb, out  # git diff and git apply --check


def test_a_file_copied_up_unchanged_is_not_refused_for_its_size(make_repo, tmp_path):
    big = os.urandom(3 * 1024**2)
    repo_dir, _ = make_repo({"data.bin": big, "README.md": "x\n"})
    repo = prepare_repo(str(repo_dir), tmp_path / "cache")
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "data.bin").write_bytes(big)  # opened for writing, rewritten the same
    out = build_in_child(upper, repo, max_bytes=1024**2)
    assert out.get("patch") == "", out
    (upper / "data.bin").write_bytes(big[:-1] + b"!")
    out = build_in_child(upper, repo, max_bytes=1024**2)
    assert out["refused"] == FILE_TOO_LARGE.format(path="data.bin", size=len(big), limit=1024**2)


# ---------------------------------------------------------------- the mount's rules, not the agent's


def _provider(tmp_path: Path, repo_dir: Path, **extra) -> LocalSandboxProvider:
    values = {"sandbox.cache_dir": str(tmp_path / "cache"), "sandbox.checkouts": "overlay", **extra}
    config = load_config(None, values, environ={})
    return LocalSandboxProvider(config, prepare_repo(str(repo_dir), config.cache_root()), "r")


def test_an_opaque_xattr_the_agent_sets_deletes_nothing_it_still_sees(make_repo, tmp_path):
    repo_dir, _ = make_repo({"pkg/a.py": "A = 1\n", "pkg/sub/b.py": "B = 2\n", "README.md": "x\n"})
    provider = _provider(tmp_path, repo_dir)
    try:
        sandbox = provider.create("root")
        session = ReplSession(sandbox.start_driver())
        session.start({"task": "xattr", "output_limit": 20000, "limits": sandbox.init_limits()})
        code = (
            "import os, subprocess\n"
            "for d in ('pkg', 'pkg/sub'):\n"
            "    os.setxattr(d, 'user.overlay.opaque', b'y')\n"
            "print(sorted(os.listdir('pkg')))\n"
            "print(repr(subprocess.run(['git', 'status', '--porcelain'], capture_output=True, text=True).stdout))\n"
        )
        r = session.execute(code, 60, lambda fn, args: None, lambda: None)
        assert r.error is None, r.error
        assert r.stdout.splitlines() == ["['a.py', 'sub']", "''"]  # the agent sees no change
        assert os.getxattr(sandbox.checkout.upper / "pkg", "user.overlay.opaque") == b"y"
        assert sandbox.diff() == ""  # and neither does the host's patch
    finally:
        provider.close()


def test_the_builder_reads_the_namespace_the_mount_used(tmp_path, make_repo):
    """userxattr mounts (not root) honour user.overlay.opaque and ignore trusted.*; the builder too."""
    from bot.rlm.sandbox.local.checkout.overlay_launch import xattr_namespace
    from bot.rlm.sandbox.local.checkout.upper_patch import diff_upper

    assert xattr_namespace(0) == "trusted" and xattr_namespace(1000) == "user"
    repo_dir, _ = make_repo({"pkg/a.py": "A = 1\n", "README.md": "x\n"})
    repo = prepare_repo(str(repo_dir), tmp_path / "cache")
    upper = tmp_path / "upper"
    (upper / "pkg").mkdir(parents=True)
    os.setxattr(upper / "pkg", "user.overlay.opaque", b"y")
    assert "deleted file mode" in diff_upper(upper, repo.cache, repo.commit, None, "user.overlay.opaque")
    assert diff_upper(upper, repo.cache, repo.commit, None, "trusted.overlay.opaque") == ""


WRITE_40_MB = """
import os
try:
    with open('big.bin', 'wb') as f:
        for _ in range(40):
            f.write(b'\\0' * (1 << 20))
            f.flush()
    print('written')
except OSError as e:
    print('refused:', e.strerror)
if os.path.exists('big.bin'):
    os.remove('big.bin')
open('small.txt', 'w').write('still works\\n')
print('after')
"""


def test_a_write_past_the_checkout_cap_fails_inside_the_sandbox(make_repo, tmp_path):
    repo_dir, _ = make_repo({"README.md": "x\n"})
    provider = _provider(tmp_path, repo_dir, **{"sandbox.checkout_mb": 16})
    try:
        first, second = provider.create("root"), provider.create("root.1")
        sessions = []
        for sandbox in (first, second):
            session = ReplSession(sandbox.start_driver())
            session.start({"task": "cap", "output_limit": 20000, "limits": sandbox.init_limits()})
            sessions.append(session)
        r = sessions[0].execute(WRITE_40_MB, 60, lambda fn, args: None, lambda: None)
        assert r.error is None, r.error
        assert r.stdout.splitlines() == ["refused: No space left on device", "after"]
        assert os.listdir(first.path) == []  # nothing of it on the host's /dev/shm
        small = sessions[1].execute(
            "open('ok.bin', 'wb').write(b'1' * (8 << 20))", 60, lambda fn, a: None, lambda: None
        )
        assert small.error is None, small.error  # the cap is each agent's own
        assert patch_stats(first.diff()).paths == ["small.txt"]
    finally:
        provider.close()
