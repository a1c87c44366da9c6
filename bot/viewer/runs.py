"""The runs a viewer may show: find them, load them, read their events after a sequence number.

A run is a pair of sibling files named by its id: `<id>.json` (the results, written when the run
ends) and `<id>.events.jsonl` (appended while it runs). A viewer serves exactly these files and
nothing else: run ids are matched against a strict pattern and looked up in a listing, never
joined onto a path from a request.

`load_run` returns the results JSON when it exists, else the fold of the events so far. The fold
keeps its private keys (`_index`, `_t0`) and gains `_seq` and `_t_last` (the last event folded and
its time), so the page can continue the very same fold in JavaScript with the events that follow
(`static/fold.js`).
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.rlm.trace import fold, new_results

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
RESULTS_SUFFIX = ".json"
EVENTS_SUFFIX = ".events.jsonl"
MAX_EVENTS_PER_READ = 5000


class NotARun(ValueError):
    """The path does not name a results JSON or an events JSONL file."""


@dataclass(frozen=True)
class RunFiles:
    """The two files of one run; either may not exist (yet)."""

    run_id: str
    results: Path
    events: Path

    @classmethod
    def from_path(cls, path: Path) -> RunFiles:
        """The run a results or events file belongs to. Raises NotARun for any other name."""
        name = path.name
        if name.endswith(EVENTS_SUFFIX):
            run_id = name[: -len(EVENTS_SUFFIX)]
        elif name.endswith(RESULTS_SUFFIX):
            run_id = name[: -len(RESULTS_SUFFIX)]
        else:
            raise NotARun(
                f"{path} is neither a results file (<run_id>.json) nor an events file (<run_id>.events.jsonl)"
            )
        if not RUN_ID.match(run_id) or run_id.endswith(".events"):
            raise NotARun(f"{path} does not have a run id for a name")
        return cls(run_id, path.with_name(run_id + RESULTS_SUFFIX), path.with_name(run_id + EVENTS_SUFFIX))

    def exists(self) -> bool:
        return self.results.is_file() or self.events.is_file()

    def mtime(self) -> float:
        times = [p.stat().st_mtime for p in (self.results, self.events) if p.is_file()]
        return max(times, default=0.0)


def _head(data: bytes) -> dict[str, Any] | None:
    """The results without their agents, cheaply: the engine writes `agents` last, at indent 1
    (`write_json_atomic`), so everything before that key is the run's metadata and totals."""
    pos = data.rfind(b'\n "agents": ')
    if pos < 0:
        return None
    try:
        head = json.loads(data[:pos].rstrip().rstrip(b",") + b"}")
    except ValueError:
        return None
    return head if isinstance(head, dict) and isinstance(head.get("totals"), dict) else None


def results_head(path: Path) -> dict[str, Any]:
    """A results file's metadata and totals (no agents); raises NotARun for any other JSON."""
    data = path.read_bytes()
    head = _head(data)
    if head is None:  # written by something else: parse it all
        full = json.loads(data)
        if not is_results(full):
            raise NotARun(f"{path} is not an rlm results file")
        head = {k: v for k, v in full.items() if k != "agents"}
    return head


def run_json(run: RunFiles) -> bytes:
    """The run as JSON bytes: a finished run's results file as it is on disk, a running one's fold
    of its events so far."""
    if run.results.is_file():
        data = run.results.read_bytes()
        if _head(data) is None and not is_results(json.loads(data)):
            raise NotARun(f"{run.results} is not an rlm results file")
        return data
    return json.dumps(load_run(run), ensure_ascii=False).encode()


def load_run(run: RunFiles) -> dict[str, Any]:
    """The results JSON if the run has finished, else the fold of its events so far (with `_seq`)."""
    if run.results.is_file():
        with open(run.results, encoding="utf-8") as f:
            data = json.load(f)
        if not is_results(data):
            raise NotARun(f"{run.results} is not an rlm results file")
        return data
    if run.events.is_file():
        return fold_file(run.events, run.run_id)
    raise FileNotFoundError(f"run {run.run_id} has no results or events file")


def is_results(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("agents"), list)
        and isinstance(data.get("totals"), dict)
    )


def fold_file(path: Path, run_id: str) -> dict[str, Any]:
    """Fold every complete line of an events file; a torn last line is left for the next read."""
    results = new_results(run_id)
    results["_seq"] = 0
    events, _ = read_events_after(path, 0, limit=None)
    for event in events:
        fold(results, event)
        results["_seq"] = event.get("seq", results["_seq"])
        results["_t_last"] = event.get("t", results.get("_t_last"))
    return results


# ---------------------------------------------------------------------- events after a seq

_offsets: dict[tuple[str, int], tuple[int, int]] = {}  # (path, inode) -> (seq, byte offset after it)
_offsets_lock = threading.Lock()


def read_events_after(
    path: Path, after: int, limit: int | None = MAX_EVENTS_PER_READ
) -> tuple[list[dict], bool]:
    """Events with seq > after, in file order, at most `limit`; and whether more remain.

    Only complete lines count (a line still being written is read next time). Reading resumes
    from the byte offset remembered for the last seq served, so following a large file stays cheap.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return [], False
    key = (str(path), st.st_ino)
    start = 0
    with _offsets_lock:
        known = _offsets.get(key)
    if known and known[0] <= after and known[1] <= st.st_size:
        start = known[1]
    events: list[dict] = []
    more = False
    last = None
    with open(path, "rb") as f:
        f.seek(start)
        offset = start
        for line in f:
            if not line.endswith(b"\n"):
                break
            offset += len(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            seq = event.get("seq") if isinstance(event, dict) else None
            if not isinstance(seq, int):
                continue
            if seq <= after:
                last = (seq, offset)
                continue
            if limit is not None and len(events) >= limit:
                more = True
                break
            events.append(event)
            last = (seq, offset)
    if last is not None:
        with _offsets_lock:
            if len(_offsets) > 256:
                _offsets.clear()
            _offsets[key] = last
    return events, more


# ---------------------------------------------------------------------- a set of runs


def summary(run: RunFiles) -> dict[str, Any]:
    """What the run list shows for one run (small: no agents)."""
    live = not run.results.is_file()
    data = load_run(run) if live else results_head(run.results)
    keys = (
        "run_id",
        "status",
        "error",
        "prompt",
        "repo",
        "commit",
        "model",
        "started_at",
        "finished_at",
        "duration",
    )
    out = {k: data.get(k) for k in keys}
    out.update(id=run.run_id, live=live, totals=data.get("totals"), mtime=run.mtime())
    return out


class RunStore:
    """The runs of ONE results directory, or the one run of ONE results/events file."""

    def __init__(self, target: Path, pending_ok: bool = False):
        """`pending_ok`: one run whose files need not exist yet (a queued job); it lists as no run."""
        target = Path(target).expanduser().resolve()
        if target.is_dir():
            self.root, self.single = target, None
        else:
            if not target.exists() and not target.name.endswith((RESULTS_SUFFIX, EVENTS_SUFFIX)):
                raise FileNotFoundError(f"{target} does not exist")
            self.single = RunFiles.from_path(target)  # a results file, or the events of a run still going
            self.root = target.parent
            if not self.single.exists() and not pending_ok:
                raise FileNotFoundError(
                    f"{target} does not exist; give a results directory or a results file"
                )
        self._summaries: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def runs(self) -> list[RunFiles]:
        if self.single is not None:
            return [self.single] if self.single.exists() else []
        found: dict[str, RunFiles] = {}
        with os.scandir(self.root) as entries:
            for entry in entries:
                if not entry.is_file():
                    continue
                try:
                    run = RunFiles.from_path(self.root / entry.name)
                except NotARun:
                    continue
                found[run.run_id] = run
        return sorted(found.values(), key=lambda r: r.run_id, reverse=True)

    def get(self, run_id: str) -> RunFiles | None:
        """The run with this id, or None. The id is matched against the listing, never used as a path."""
        if not RUN_ID.match(run_id or ""):
            return None
        for run in self.runs():
            if run.run_id == run_id and _inside(run, self.root):
                return run
        return None

    def list(self) -> list[dict[str, Any]]:
        """Summaries of the runs, newest first; files that are not rlm runs are left out."""
        out = []
        for run in self.runs():
            if not _inside(run, self.root):
                continue
            mtime = run.mtime()
            with self._lock:
                cached = self._summaries.get(run.run_id)
            if cached is None or cached[0] != mtime:
                try:
                    cached = (mtime, summary(run))
                except (OSError, ValueError):
                    continue
                with self._lock:
                    self._summaries[run.run_id] = cached
            out.append(cached[1])
        return out


def _inside(run: RunFiles, root: Path) -> bool:
    """Both files (where they exist) resolve inside root: a symlink out of the directory is refused."""
    for path in (run.results, run.events):
        if path.exists() and path.resolve().parent != root:
            return False
    return True
