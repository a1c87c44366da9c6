"""The runs a viewer may show: find them, load them, and fold a running one's events for the page.

A run is a pair of sibling files named by its id: `<id>.json` (the results, written when the run
ends) and `<id>.events.jsonl` (appended while it runs). A viewer serves exactly these files and
nothing else: run ids are matched against a strict pattern and looked up in a listing, never
joined onto a path from a request.

The page never interprets events: for a running run the server folds them with the engine's own
fold (bot/rlm/fold.py), keeping one fold per followed run and reading only the new lines, and the
page asks for what changed since the sequence number it has (`changes`): the run's fields and
the agents an event touched since then, which it puts in place.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.rlm import fold, new_results, public, read_head

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


def results_head(path: Path) -> dict[str, Any]:
    """A results file's metadata and totals (no agents); raises NotARun for any other JSON."""
    head = read_head(path)
    if head is None:  # not written by the engine: parse it all
        full = json.loads(path.read_bytes())
        if not is_results(full):
            raise NotARun(f"{path} is not an rlm results file")
        head = {k: v for k, v in full.items() if k != "agents"}
    return head


def run_json(run: RunFiles) -> bytes:
    """The run as JSON bytes: a finished run's results file as it is on disk, a running one's fold
    of its events so far (with `_seq`, the last event folded)."""
    if run.results.is_file():
        results_head(run.results)  # refuses anything that is not a results file
        return run.results.read_bytes()
    if not run.events.is_file():
        raise FileNotFoundError(f"run {run.run_id} has no results or events file")
    return LIVE.get(run).whole()


def load_run(run: RunFiles) -> dict[str, Any]:
    """The results JSON if the run has finished, else the fold of its events so far (with `_seq`)."""
    if run.results.is_file():
        with open(run.results, encoding="utf-8") as f:
            data = json.load(f)
        if not is_results(data):
            raise NotARun(f"{run.results} is not an rlm results file")
        return data
    if run.events.is_file():
        return json.loads(LIVE.get(run).whole())
    raise FileNotFoundError(f"run {run.run_id} has no results or events file")


def is_results(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("agents"), list)
        and isinstance(data.get("totals"), dict)
    )


def json_bytes(data: Any) -> bytes:
    """JSON as UTF-8; a lone surrogate (an events file from elsewhere) becomes "?", not an error."""
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "replace")


@dataclass
class LiveFold:
    """The engine's fold of one run's events so far, advanced with the lines appended since."""

    run_id: str
    events: Path
    results: dict[str, Any] = field(init=False)
    seq: int = 0
    t_last: float | None = None
    touched: dict[str, int] = field(default_factory=dict)  # agent id -> seq of the last event on it
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.results = new_results(self.run_id)

    def _advance(self) -> bool:
        """Fold what was appended (up to MAX_EVENTS_PER_READ); whether more remain."""
        events, more = read_events_after(self.events, self.seq)
        for event in events:
            fold(self.results, event)
            self.seq, self.t_last = event["seq"], event.get("t", self.t_last)
            if isinstance(event.get("agent"), str):
                self.touched[event["agent"]] = self.seq
        return more

    def _head(self) -> dict[str, Any]:
        head = {k: v for k, v in public({**self.results, "agents": []}).items() if k != "agents"}
        return {**head, "_seq": self.seq, "_t_last": self.t_last}

    def whole(self) -> bytes:
        """The whole fold so far, as the results JSON with `_seq` and `_t_last`."""
        with self.lock:
            while self._advance():
                pass
            return json_bytes({**self._head(), "agents": public(self.results)["agents"]})

    def changes(self, after: int) -> bytes:
        """What changed since event `after`: {"run": the fields without agents, "agents": the agents
        an event touched since, "more": events remain to fold}."""
        with self.lock:
            more = self._advance()
            agents = public(self.results)["agents"]
            changed = [a for a in agents if self.touched.get(a["id"], 0) > after]
            return json_bytes({"run": self._head(), "agents": changed, "more": more})


class LiveFolds:
    """One LiveFold per followed run (by events file and inode), the least recently used dropped."""

    def __init__(self, size: int = 16):
        self.size = size
        self._folds: OrderedDict[tuple[str, int], LiveFold] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run: RunFiles) -> LiveFold:
        key = (str(run.events), run.events.stat().st_ino)
        with self._lock:
            live = self._folds.get(key)
            if live is None:
                live = self._folds[key] = LiveFold(run.run_id, run.events)
                while len(self._folds) > self.size:
                    self._folds.popitem(last=False)
            self._folds.move_to_end(key)
            return live


LIVE = LiveFolds()


def changes_json(run: RunFiles, after: int) -> bytes:
    """The answer to `api/runs/<id>/changes?after=N`: a running run's changes since event N (see
    LiveFold.changes) plus "live" and the server's "now"; once the results file exists, just
    {"live": false} (the page then loads the results)."""
    if run.results.is_file() or not run.events.is_file():
        return json.dumps({"live": False, "now": time.time()}).encode()
    body = LIVE.get(run).changes(after)
    return body[:-1] + f', "live": true, "now": {time.time()!r}}}'.encode()


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
