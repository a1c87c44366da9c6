"""Local checkouts: priority order of copies, the pool of ready copies, and its bounds."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from bot.rlm.repo import prepare_repo
from bot.rlm.sandbox.local.checkout.copies import CopiedCheckouts, PrioritySlots


def test_priority_slots_serve_the_deepest_waiter_first():
    slots = PrioritySlots(1)
    order: list[int] = []

    def waiter(priority: int) -> None:
        with slots.hold(priority):
            order.append(priority)

    with slots.hold(0):
        threads = []
        for priority in (0, 2, 1, 2):
            t = threading.Thread(target=waiter, args=(priority,))
            t.start()
            threads.append(t)
            time.sleep(0.05)  # queue them in this order
    for t in threads:
        t.join(5)
    assert order == [2, 2, 1, 0]


def _wait_for(predicate, timeout=20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_pool_hands_out_ready_copies_within_the_budget(make_repo, tmp_path):
    repo, sha = make_repo({"a.py": "x = 1\n", "dir/b.txt": "b\n"})
    prepared = prepare_repo(str(repo), tmp_path / "cache")
    root = tmp_path / "sandboxes"
    root.mkdir()
    checkouts = CopiedCheckouts(prepared, root, limit=5, pool_size=3)
    checkouts.template()

    def pooled() -> list[Path]:
        return sorted(p for p in root.iterdir() if p.name.startswith("pool-") and not p.name.endswith(".git"))

    assert _wait_for(lambda: len(pooled()) == 3)
    ready = set(pooled())
    taken = [checkouts.take(f"root.{i}-x", priority=1) for i in range(2)]
    for workdir, admin in ((c.path, c.admin) for c in taken):
        assert (workdir / "a.py").read_text() == "x = 1\n" and (workdir / "dir" / "b.txt").exists()
        assert (workdir / ".git").read_text() == f"gitdir: {admin}\n"
        head = subprocess.run(
            ["git", "--git-dir", str(admin), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        assert head.stdout.strip() == sha
    assert len(ready & set(pooled())) == 1  # two of the three ready copies were renamed out
    # The pool refills, but never past the budget: 3 pooled + 2 refills = 5 = limit.
    assert _wait_for(lambda: len(pooled()) == 1 + 2)
    time.sleep(0.3)
    assert len(pooled()) == 3
    checkouts.close()
    assert pooled() == []
    assert all(c.path.exists() for c in taken)  # handed-out checkouts belong to their sandboxes


def test_pinned_commits_in_the_cache_are_bounded(make_repo, tmp_path):
    from bot.rlm.repo import MAX_PINNED, git
    from tests.conftest import commit_files

    repo, first = make_repo({"a.txt": "0\n"})
    cache_root = tmp_path / "cache"
    shas = [first]
    prepared = prepare_repo(str(repo), cache_root)
    for i in range(MAX_PINNED + 4):
        shas.append(commit_files(repo, {"a.txt": f"{i + 1}\n"}, f"change {i}"))
        prepared = prepare_repo(str(repo), cache_root)
    pins = (
        git("for-each-ref", "--format=%(refname)", "refs/rlm/pinned/", git_dir=prepared.cache)
        .stdout.decode()
        .split()
    )
    assert len(pins) == MAX_PINNED
    assert f"refs/rlm/pinned/{shas[-1]}" in pins and f"refs/rlm/pinned/{first}" not in pins
