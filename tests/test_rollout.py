"""A whole rollout on a real repo: the tree, the commit every agent sees, the patch, the trace."""

from __future__ import annotations

import json
import subprocess

from bot.rlm import engine, fold_events, public, read_events, summary_markdown
from bot.rlm.patch import apply_to_dir
from bot.rlm.sandbox import bwrap_works
from tests.conftest import commit_files, git, leftovers, py

TREE_SCRIPT = [
    {
        "task": "^Improve",
        "responses": [
            py('answers = rlm_query_batched(["Child A", "Child B", "Child C"])\nprint(answers)'),
            py(
                """
                print(edit_file("app.py", "return 1", "return 2"))
                open("notes.txt", "w").write("new file\\n")
                import os
                os.makedirs("build", exist_ok=True)
                open("build/out.log", "w").write("ignored\\n")
                summary = "; ".join(answers)
                FINAL_VAR("summary")
                """
            ),
        ],
    },
    {
        "task": "^Child B",
        "responses": [
            py('r = rlm_query_batched(["Grandchild 1", "Grandchild 2"])'),
            py('FINAL("B:" + ",".join(r))'),
        ],
    },
    {"task": "^Child", "responses": [py("FINAL(task.lower())")]},
    {"task": "^Grandchild", "responses": [py('FINAL(task + " done")')]},
]


def test_multi_level_tree_patch_and_trace(make_repo, write_script, make_config, tmp_path):
    repo, sha = make_repo({"app.py": "def f():\n    return 1\n", ".gitignore": "build/\n"})
    config = make_config(write_script(TREE_SCRIPT))
    prepared = engine.prepare(config, str(repo))
    assert prepared.commit == sha
    result = engine.run(config, prepared, "Improve the app")

    assert result.status == "completed", result.error
    assert result.answer == "child a; B:Grandchild 1 done,Grandchild 2 done; child c"

    agents = {a["id"]: a for a in result.results["agents"]}
    assert set(agents) == {"root", "root.1", "root.2", "root.3", "root.2.1", "root.2.2"}
    expect = {
        "root.1": ("root", 1, 0, 1),
        "root.2": ("root", 1, 1, 1),
        "root.3": ("root", 1, 2, 1),
        "root.2.1": ("root.2", 1, 0, 2),
        "root.2.2": ("root.2", 1, 1, 2),
    }
    for agent_id, (parent, iteration, index, depth) in expect.items():
        a = agents[agent_id]
        assert (a["parent"], a["parent_iteration"], a["index"], a["depth"]) == (
            parent,
            iteration,
            index,
            depth,
        )
        assert a["status"] == "completed"
    assert agents["root"]["iterations"][0]["children"] == ["root.1", "root.2", "root.3"]
    assert agents["root.2"]["iterations"][0]["children"] == ["root.2.1", "root.2.2"]
    totals = result.results["totals"]
    assert totals["agents"] == 6 and totals["max_depth"] == 2 and totals["sandboxes"] == 6
    assert totals["iterations"] == 2 + 2 + 1 + 1 + 1 + 1
    assert totals["cost_usd"] > 0 and totals["prompt_tokens"] > 0

    # The patch: the edit and the untracked file, not the ignored one; it applies to a clean clone.
    assert "+    return 2" in result.patch and "notes.txt" in result.patch
    assert "out.log" not in result.patch
    assert result.results["patch"]["files"] == 2
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    apply_to_dir(result.patch, clone)
    assert (clone / "app.py").read_text() == "def f():\n    return 2\n"
    assert (clone / "notes.txt").read_text() == "new file\n"

    # Events on disk rebuild exactly the results JSON on disk.
    events = read_events(result.events_path)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "rollout_started" and kinds[-1] == "rollout_finished"
    assert kinds.count("agent_started") == 6 == kinds.count("agent_finished")
    spawned = [
        (e["agent"], e["child"], e["iteration"], e["index"]) for e in events if e["type"] == "child_spawned"
    ]
    assert ("root.2", "root.2.2", 1, 1) in spawned and len(spawned) == 5
    on_disk = json.loads(result.results_path.read_text())
    assert public(fold_events(events)) == on_disk
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    summary = summary_markdown(on_disk)
    assert "6 agents" in summary and "`root.2.1`" in summary
    # Nothing left behind: no process, no checkout.
    assert leftovers(tmp_path / "cache") == []


def test_every_agent_checks_out_the_requested_commit(make_repo, write_script, make_config):
    repo, first = make_repo({"version.txt": "v1\n"})
    commit_files(repo, {"version.txt": "v2\n"}, "second")
    git(repo, "checkout", "-q", "-b", "feature")
    commit_files(repo, {"version.txt": "v3\n"}, "feature work")
    git(repo, "checkout", "-q", "main")
    script = write_script(
        [
            {
                "task": "^Read",
                "responses": [
                    py('mine = open("version.txt").read().strip()\nFINAL(mine + "/" + rlm_query("Child"))')
                ],
            },
            {"task": "^Child", "responses": [py('FINAL(open("version.txt").read().strip())')]},
        ]
    )
    config = make_config(script)
    at_commit = engine.run(config, engine.prepare(config, str(repo), commit=first), "Read it")
    assert at_commit.answer == "v1/v1"
    at_branch = engine.run(config, engine.prepare(config, str(repo), branch="feature"), "Read it")
    assert at_branch.answer == "v3/v3"
    default = engine.run(config, engine.prepare(config, str(repo)), "Read it")
    assert default.answer == "v2/v2"


def test_no_change_is_a_clear_outcome(make_repo, write_script, make_config):
    repo, _ = make_repo()
    config = make_config(write_script([{"task": "", "responses": [py('FINAL("nothing to do")')]}]))
    result = engine.run(config, engine.prepare(config, str(repo)), "Look")
    assert result.status == "completed" and not result.has_changes
    assert result.results["patch"] == {"files": 0, "additions": 0, "deletions": 0, "paths": [], "binary": []}


def test_binary_and_deleted_files_survive_the_patch(make_repo, write_script, make_config, tmp_path):
    repo, _ = make_repo({"old.txt": "bye\n", "keep.txt": "k\n"})
    script = write_script(
        [
            {
                "task": "",
                "responses": [
                    py(
                        """
                        import os
                        os.remove("old.txt")
                        open("logo.bin", "wb").write(bytes(range(256)))
                        FINAL("done")
                        """
                    )
                ],
            }
        ]
    )
    config = make_config(script)
    result = engine.run(config, engine.prepare(config, str(repo)), "Change")
    assert result.results["patch"]["binary"] == ["logo.bin"]
    clone = tmp_path / "clone2"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    apply_to_dir(result.patch, clone)
    assert not (clone / "old.txt").exists()
    assert (clone / "logo.bin").read_bytes() == bytes(range(256))


def test_checkouts_go_to_work_dir_or_memory_backed_shm(make_repo, write_script, make_config, tmp_path):
    from bot.rlm.sandbox.local import roots

    repo, _ = make_repo({"big.txt": "x" * 10_000, "small.txt": "y"})
    script = write_script([{"task": "", "responses": [py("import os\nFINAL(os.getcwd())")]}])
    # Without isolation the agent's working directory is the checkout's host path; under bubblewrap
    # it is /rlm/checkout (one path for the agent: cwd, tracebacks, tools, setup's installs).
    config = make_config(script, sandbox__work_dir=str(tmp_path / "work"), sandbox__isolation="none")
    prepared = engine.prepare(config, str(repo))
    assert roots.checkout_bytes(prepared) == 10_001
    result = engine.run(config, prepared, "Where am I")
    assert result.answer.startswith(str(tmp_path / "work" / "sandboxes"))
    if bwrap_works():
        isolated = make_config(script, sandbox__work_dir=str(tmp_path / "work"))
        assert engine.run(isolated, prepared, "Where am I").answer == "/rlm/checkout"
    # Default: /dev/shm when it has room for max_sandboxes checkouts, else the cache directory.
    auto = make_config(script)
    assert roots.choose_root(auto, prepared) == roots.shm_root(auto.cache_root())
    huge = make_config(script, rlm__max_sandboxes=10**9)
    assert roots.choose_root(huge, prepared) == huge.cache_root()
