"""Full-copy checkouts of the pinned commit for local sandboxes, made cheaply and ahead of need.

Each checkout is a private git dir (borrowing the cache's objects through `alternates`) plus a
working tree. The first one of a rollout (the template) is made by git; every other one is a file
copy of it, which skips inflating every blob again. While the models think, an idle-priority
filler keeps a few copies ready, so a burst of children (25 at once) takes checkouts that already
exist instead of queueing for the disk and the CPU.
"""

from __future__ import annotations

import heapq
import itertools
import os
import queue
import shutil
import subprocess
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ....patch import diff_worktree
from ....repo import PreparedRepo, git, tag_refs


@dataclass
class CopiedCheckout:
    """One agent's full copy of the checkout (`path`) with its private git dir (`admin`, read-only
    inside)."""

    path: Path
    admin: Path

    @property
    def ro_binds(self) -> list[Path]:
        return [self.admin]

    def launch(self, command: list[str]) -> list[str]:
        return command

    def add_layer(self, layer: Path) -> None:
        """`layer`'s files copied in, excluded from the patch (setup_layer.py)."""
        from .setup_layer import copy_into

        copy_into(layer, self.path, self.admin)

    def diff(self, cache: Path, base: str, max_bytes: int | None) -> str:
        return diff_worktree(cache, self.path, base, max_bytes)

    def remove(self) -> None:
        remove(self.path, self.admin)


def checkout(repo: PreparedRepo, workdir: Path, admin: Path) -> None:
    """A private git dir (`admin`) and a checkout of the pinned commit in `workdir`. Unlike
    `git worktree add`, independent checkouts are safe in parallel. With `admin` at
    `workdir/.git` the git dir is inside the checkout (a shared lower layer carries its own)."""
    separate = [] if admin == workdir / ".git" else [f"--separate-git-dir={admin}"]
    git("init", "--quiet", "--template=", *separate, str(workdir))
    (admin / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (admin / "objects" / "info" / "alternates").write_text(str(repo.objects) + "\n")
    git(f"--work-tree={workdir}", "read-tree", "-u", "--reset", repo.commit, git_dir=admin, timeout=600)
    git("update-ref", "--no-deref", "HEAD", repo.commit, git_dir=admin)
    write_tags(repo, admin)


def write_tags(repo: PreparedRepo, admin: Path) -> None:
    """The tags on the commit's history into a checkout's git dir, so `git describe` works there
    (atomically: a shared checkout may be in use)."""
    text = "# pack-refs with: peeled\n" + tag_refs(repo)
    path = admin / "packed-refs"
    if not path.exists() or path.read_text() != text:
        tmp = admin / f"packed-refs.{uuid.uuid4().hex[:8]}"
        tmp.write_text(text)
        tmp.replace(path)


def copy_checkout(src: Path, src_admin: Path, workdir: Path, admin: Path, nice: bool = False) -> None:
    """A private copy of a checkout and its git dir (reflinks where the filesystem can)."""
    prefix = ["nice", "-n", "15"] if nice else []
    for a, b in ((src, workdir), (src_admin, admin)):
        subprocess.run(
            [
                *prefix,
                "cp",
                "-R",
                "--no-dereference",
                "--preserve=mode,timestamps,links",
                "--reflink=auto",
                str(a),
                str(b),
            ],
            check=True,
            capture_output=True,
        )
    (workdir / ".git").write_text(f"gitdir: {admin}\n")


def remove(workdir: Path, admin: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(admin, ignore_errors=True)


class PrioritySlots:
    """At most `n` holders at once; a waiter with a higher priority goes first, then first come."""

    def __init__(self, n: int):
        self._cond = threading.Condition()
        self._free = n
        self._waiting: list[tuple[int, int]] = []
        self._seq = itertools.count()

    @contextmanager
    def hold(self, priority: int = 0):
        entry = (-priority, next(self._seq))
        with self._cond:
            heapq.heappush(self._waiting, entry)
            while not (self._free > 0 and self._waiting[0] == entry):
                self._cond.wait()
            heapq.heappop(self._waiting)
            self._free -= 1
        try:
            yield
        finally:
            with self._cond:
                self._free += 1
                self._cond.notify_all()


class CopiedCheckouts:
    """Hands out checkouts under `root`; at most `limit` in all (the rollout's sandbox budget)."""

    POOL_PRIORITY = -1  # below every agent's request (an agent's priority is its depth >= 0)

    def __init__(self, repo: PreparedRepo, root: Path, limit: int, pool_size: int):
        self.repo = repo
        self.root = root
        self._limit = limit
        self._pool_size = pool_size
        self._pool: queue.SimpleQueue[tuple[Path, Path]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._template_lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._made = 0  # checkouts handed out or pooled
        self._pooled = 0
        self._closed = False
        # Copies are CPU- and IO-bound: more at once than the machine has cores only makes every
        # one of them late. Deeper agents go first: every ancestor of theirs is waiting on them.
        self._slots = PrioritySlots(max(2, os.cpu_count() or 2))
        self._filler: threading.Thread | None = None

    def template(self) -> tuple[Path, Path]:
        with self._template_lock:
            workdir, admin = self.root / "template", self.root / "template.git"
            if not (admin / "HEAD").exists():
                remove(workdir, admin)
                checkout(self.repo, workdir, admin)
                if self._pool_size > 0 and self._filler is None:
                    self._filler = threading.Thread(target=self._fill, daemon=True, name="rlm-checkout-pool")
                    self._filler.start()
            return workdir, admin

    def take(self, name: str, priority: int) -> CopiedCheckout:
        """A checkout at `root/name` (git dir `root/name.git`); raises CalledProcessError."""
        workdir, admin = self.root / name, self.root / f"{name}.git"
        template, template_admin = self.template()
        pooled = self._take_pooled()
        if pooled is not None:
            os.rename(pooled[0], workdir)
            os.rename(pooled[1], admin)
            (workdir / ".git").write_text(f"gitdir: {admin}\n")
            return CopiedCheckout(workdir, admin)
        with self._lock:
            self._made += 1
        try:
            with self._slots.hold(priority):
                copy_checkout(template, template_admin, workdir, admin)
        except BaseException:
            remove(workdir, admin)
            raise
        return CopiedCheckout(workdir, admin)

    def _take_pooled(self) -> tuple[Path, Path] | None:
        with self._lock:
            try:
                item = self._pool.get_nowait()
            except queue.Empty:
                return None
            self._pooled -= 1
            self._wake.notify_all()
            return item

    def _fill(self) -> None:
        template, template_admin = self.template()
        while True:
            with self._lock:
                while not self._closed and (self._pooled >= self._pool_size or self._made >= self._limit):
                    self._wake.wait()
                if self._closed:
                    return
                self._made += 1
                self._pooled += 1
            name = f"pool-{uuid.uuid4().hex[:8]}"
            workdir, admin = self.root / name, self.root / f"{name}.git"
            try:
                with self._slots.hold(self.POOL_PRIORITY):
                    copy_checkout(template, template_admin, workdir, admin, nice=True)
            except (OSError, subprocess.CalledProcessError):
                remove(workdir, admin)
                with self._lock:
                    self._pooled -= 1
                return  # the disk is full or gone: agents fall back to copying on demand
            self._pool.put((workdir, admin))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        if self._filler is not None:
            self._filler.join(timeout=30)
        while True:
            try:
                remove(*self._pool.get_nowait())
            except queue.Empty:
                return
