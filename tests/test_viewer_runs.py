"""The viewer's data shaping: which files are runs, loading them, reading events after a seq."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.synthetic import synthetic_events, write_synthetic
from bot.rlm import fold_events, public, read_head
from bot.viewer.runs import (
    NotARun,
    RunFiles,
    RunStore,
    changes_json,
    load_run,
    read_events_after,
    results_head,
    run_json,
)


def write_events(path: Path, events: list[dict]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def test_run_files_from_either_file_name(tmp_path):
    a = RunFiles.from_path(tmp_path / "20260101-x.json")
    b = RunFiles.from_path(tmp_path / "20260101-x.events.jsonl")
    assert a == b
    assert a.results.name == "20260101-x.json" and a.events.name == "20260101-x.events.jsonl"
    for bad in ("notes.txt", ".json", "x.events.json", "-x.json", "a b.json", "x.events.events.jsonl"):
        with pytest.raises(NotARun):
            RunFiles.from_path(tmp_path / bad)


def test_synthetic_trace_has_the_requested_shape():
    events = synthetic_events(agents=200, iterations=5000)
    results = public(fold_events(events))
    agents = {a["id"]: a for a in results["agents"]}
    assert results["totals"]["agents"] == len(agents) == 200
    assert results["totals"]["iterations"] == sum(len(a["iterations"]) for a in agents.values()) == 5000
    assert results["totals"]["max_depth"] == 3
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(a["t"] <= b["t"] for a, b in zip(events, events[1:], strict=False))
    for agent in agents.values():
        if agent["parent"] is None:
            continue
        parent = agents[agent["parent"]]
        spawned_in = parent["iterations"][agent["parent_iteration"] - 1]
        assert agent["id"] in spawned_in["children"]
        assert agent["depth"] == parent["depth"] + 1
    assert {"completed", "error"} <= {a["status"] for a in agents.values()}


def test_load_run_prefers_results_and_falls_back_to_the_fold(tmp_path):
    results_path, events_path = write_synthetic(tmp_path, agents=8, iterations=40, seed=1, results=False)
    run = RunFiles.from_path(events_path)
    folded = load_run(run)
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    assert folded["_seq"] == events[-1]["seq"] and folded["_t_last"] == events[-1]["t"]
    assert public(folded) == public(fold_events(events, folded["run_id"]))
    write_synthetic(tmp_path, agents=8, iterations=40, seed=1)
    assert load_run(run) == json.loads(results_path.read_text())
    assert run_json(run) == results_path.read_bytes()


def test_results_head_is_the_metadata_without_agents(tmp_path):
    results_path, _ = write_synthetic(tmp_path, agents=5, iterations=20, seed=2)
    full = json.loads(results_path.read_text())
    head = results_head(results_path)
    assert head == {k: v for k, v in full.items() if k != "agents"}
    compact = tmp_path / "compact.json"  # written by something else than the engine: parsed whole
    compact.write_text(json.dumps(full))
    assert results_head(compact) == head
    other = tmp_path / "package.json"
    other.write_text('{"name": "x", "agents": "not a list"}')
    with pytest.raises(NotARun):
        results_head(other)
    with pytest.raises(NotARun):
        run_json(RunFiles.from_path(other))


@pytest.mark.parametrize("indent", [None, 0, 1, 4])
def test_results_head_does_not_depend_on_the_layout(tmp_path, indent):
    results_path, _ = write_synthetic(tmp_path, agents=3, iterations=9, seed=6)
    full = json.loads(results_path.read_text())
    full["prompt"] = "p" * 200_000 + ' "agents": ['  # a head longer than the first read, mimicking the key
    path = tmp_path / "other-layout.json"
    path.write_text(json.dumps(full, indent=indent, separators=None if indent is not None else (",", ":")))
    assert read_head(path) == {k: v for k, v in full.items() if k != "agents"}


def test_results_head_of_a_file_with_agents_first_is_parsed_whole(tmp_path):
    results_path, _ = write_synthetic(tmp_path, agents=3, iterations=9, seed=6)
    full = json.loads(results_path.read_text())
    path = tmp_path / "agents-first.json"
    path.write_text(
        json.dumps({"agents": full["agents"], **{k: v for k, v in full.items() if k != "agents"}})
    )
    assert read_head(path) is None
    assert results_head(path) == {k: v for k, v in full.items() if k != "agents"}


def apply_changes(state: dict, changes: dict) -> None:
    """What the page does with `changes` (viewer.js: applyChanges)."""
    positions = {a["id"]: i for i, a in enumerate(state["agents"])}
    state.update(changes["run"])
    for agent in changes["agents"]:
        if agent["id"] in positions:
            state["agents"][positions[agent["id"]]] = agent
        else:
            positions[agent["id"]] = len(state["agents"])
            state["agents"].append(agent)


def test_changes_rebuild_the_engines_fold_as_the_events_grow(tmp_path):
    """The page follows a run with `changes` only; at every step its state is the engine's fold."""
    events = synthetic_events(agents=12, iterations=60, seed=8)
    path = tmp_path / f"{events[0]['run_id']}.events.jsonl"
    run = RunFiles.from_path(path)
    write_events(path, events[:3])
    state = json.loads(run_json(run))
    for end in (10, 11, 40, 41, len(events) // 2, len(events)):
        write_events(path, events[:end])
        changes = json.loads(changes_json(run, state["_seq"]))
        assert changes["live"] is True and changes["now"] > 0
        touched = {e["agent"] for e in events if state["_seq"] < e["seq"] <= end and "agent" in e}
        assert {a["id"] for a in changes["agents"]} == touched
        apply_changes(state, changes)
        expected = public(fold_events(events[:end], state["run_id"]))
        assert {k: v for k, v in state.items() if not k.startswith("_")} == expected
        assert state["_seq"] == events[end - 1]["seq"]
    write_synthetic(tmp_path, agents=12, iterations=60, seed=8)
    assert json.loads(changes_json(run, state["_seq"]))["live"] is False  # finished: load the results


def test_events_after_skips_a_torn_line_and_resumes(tmp_path):
    events = synthetic_events(agents=3, iterations=9, seed=3)
    path = tmp_path / "r.events.jsonl"
    write_events(path, events[:5])
    with open(path, "a") as f:
        f.write(json.dumps(events[5])[:20])  # a line still being written
    got, more = read_events_after(path, 0)
    assert [e["seq"] for e in got] == [1, 2, 3, 4, 5] and not more
    with open(path, "a") as f:
        f.write(json.dumps(events[5])[20:] + "\n")
        f.write("".join(json.dumps(e) + "\n" for e in events[6:]))
    got, _ = read_events_after(path, 5)
    assert [e["seq"] for e in got] == [e["seq"] for e in events[5:]]
    got, more = read_events_after(path, 2, limit=2)
    assert [e["seq"] for e in got] == [3, 4] and more
    assert read_events_after(tmp_path / "missing.events.jsonl", 0) == ([], False)


def test_store_lists_only_runs_inside_the_directory(tmp_path):
    results = tmp_path / "results"
    write_synthetic(results, agents=4, iterations=12, seed=4)
    _, live_events = write_synthetic(results / "x", agents=3, iterations=6, seed=5, results=False)
    lines = live_events.read_text().splitlines(keepends=True)
    (results / "live-run.events.jsonl").write_text("".join(lines[: len(lines) // 2]))  # still going
    (results / "package.json").write_text('{"name": "not a run"}')
    (results / "notes.txt").write_text("secret")
    outside = tmp_path / "outside.json"
    outside.write_text((results / "synthetic-4a-12i.json").read_text())
    (results / "escape.json").symlink_to(outside)

    store = RunStore(results)
    listed = {r["id"]: r for r in store.list()}
    assert set(listed) == {"synthetic-4a-12i", "live-run"}
    assert listed["live-run"]["live"] is True and listed["live-run"]["status"] == "running"
    assert listed["synthetic-4a-12i"]["totals"]["agents"] == 4
    assert store.get("escape") is None and store.get("notes") is None
    assert store.get("../outside") is None and store.get("x/synthetic-3a-6i") is None

    single = RunStore(results / "live-run.events.jsonl")
    assert [r.run_id for r in single.runs()] == ["live-run"]
    assert single.get("synthetic-4a-12i") is None
    with pytest.raises(FileNotFoundError):
        RunStore(results / "nope.json")


def test_a_lone_surrogate_in_a_foreign_events_file_is_served(tmp_path):
    events = synthetic_events(agents=2, iterations=4, seed=9)
    events[1]["task"] = "bad \ud800 text"  # json.dumps escapes it: valid JSON, invalid text
    path = tmp_path / f"{events[0]['run_id']}.events.jsonl"
    write_events(path, events)
    run = RunFiles.from_path(path)
    assert json.loads(run_json(run))["agents"][0]["task"] == "bad ? text"
    assert json.loads(changes_json(run, 0))["agents"][0]["task"] == "bad ? text"
