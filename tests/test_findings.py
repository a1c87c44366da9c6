"""COMMENT(path, line, body, suggestion=None): findings recorded by any agent of a review run reach
the run's results (and RolloutResult.findings) through the REPL protocol, checked by the host."""

from __future__ import annotations

from bot.rlm import engine, prompts
from bot.rlm.findings import Finding, RunMode, parse_findings
from tests.conftest import py

FILES = {"calc.py": "def add(a, b):\n    return a - b\n", "README.md": "# demo\n"}


def run_review(make_repo, write_script, make_config, rules, **kw):
    repo, _ = make_repo(FILES)
    config = make_config(write_script(rules))
    return engine.run(config, engine.prepare(config, str(repo)), "Review this change", mode="review", **kw)


def test_a_child_and_the_root_record_findings_that_reach_the_results(make_repo, write_script, make_config):
    child = py(
        'COMMENT("calc.py", 2, "Subtracts instead of adding.", suggestion="    return a + b")\n'
        'FINAL("one bug in calc.py")'
    )
    root = [
        py('a = rlm_query("Review calc.py")\nprint(a)'),
        py(
            'COMMENT("./README.md", 1, "Title says nothing.")\n'
            'open("calc.py", "w").write("scratch edit\\n")\n'
            'FINAL("The change breaks add().")'
        ),
    ]
    result = run_review(
        make_repo,
        write_script,
        make_config,
        [{"task": "^Review calc", "responses": [child]}, {"task": "", "responses": root}],
    )
    assert result.status == "completed" and result.mode is RunMode.REVIEW
    assert result.findings == [
        Finding("calc.py", 2, "Subtracts instead of adding.", "    return a + b", agent="root.1"),
        Finding("README.md", 1, "Title says nothing.", None, agent="root"),
    ]
    assert [f["agent"] for f in result.results["findings"]] == ["root.1", "root"]
    assert result.results["mode"] == "review"
    assert result.patch == ""  # a review is read-only: the root's scratch edit is not a patch
    stdout = result.results["agents"][0]["iterations"][1]["blocks"][0]["stdout"]
    assert "finding recorded on README.md:1" in stdout


def test_bad_comments_are_errors_the_model_reads_and_nothing_is_recorded(
    make_repo, write_script, make_config
):
    bad = (
        py('COMMENT("nope.py", 1, "x")') + py('COMMENT("calc.py", 99, "x")') + py('COMMENT("calc.py", 1, "")')
    )
    bad += py('COMMENT("../etc/passwd", 1, "x")')
    result = run_review(
        make_repo, write_script, make_config, [{"task": "", "responses": [bad, py('FINAL("none")')]}]
    )
    errors = [b["error"] for b in result.results["agents"][0]["iterations"][0]["blocks"]]
    assert "there is no file 'nope.py'" in errors[0]
    assert "calc.py has only 2 lines" in errors[1]
    assert "body must say what is wrong" in errors[2]
    assert "is not inside the repository" in errors[3]
    assert result.findings == []


def test_the_host_drops_findings_forged_past_comment(make_repo, write_script, make_config):
    """Agent code can reach the driver's list; the host still keeps only well-formed findings."""
    forge = py(
        "box = COMMENT.__self__.findings\n"
        'box.append({"path": "/etc/passwd", "line": 1, "body": "x"})\n'
        'box.append({"path": "calc.py", "line": "2", "body": "x"})\n'
        'box.append({"path": "calc.py", "line": True, "body": "x"})\n'
        'box.append("junk")\n'
        'box.append({"path": "calc.py", "line": 1, "body": "kept", "suggestion": 5})\n'
        'box.append({"path": "calc.py", "line": 1, "body": "' + "y" * 9000 + '"})\n'
    )
    result = run_review(
        make_repo, write_script, make_config, [{"task": "", "responses": [forge, py('FINAL("x")')]}]
    )
    assert [(f.path, f.line, len(f.body)) for f in result.findings] == [("calc.py", 1, 8000)]


def test_parse_findings_bounds_a_block():
    raw = [{"path": "a.py", "line": 1, "body": f"b{i}"} for i in range(150)]
    assert len(parse_findings(raw, "root")) == 100
    assert parse_findings("not a list", "root") == []


def test_review_prompts_name_comment_and_change_prompts_do_not():
    review_root = prompts.system_prompt(0, 2, "a" * 40, "goal", mode=RunMode.REVIEW)
    review_child = prompts.system_prompt(1, 2, "a" * 40, "goal", mode=RunMode.REVIEW)
    change_root = prompts.system_prompt(0, 2, "a" * 40, "goal")
    assert "COMMENT(path, line, body, suggestion=None)" in review_root
    assert "CODE REVIEW" in review_root and "rlm_query_batched" in review_root
    assert "COMMENT(path, line, body, suggestion=None)" in review_child
    assert "This run is a code review" in review_child
    assert "COMMENT(" not in change_root
    assert "A question" in change_root and "change NO files" in change_root


def test_the_repositorys_own_modules_import_in_the_repl(make_repo, write_script, make_config):
    """Found playing the model through the bridge: `from calc import add` failed in the REPL while
    the prompt calls the checkout root importable."""
    repo, _ = make_repo(
        {"calc.py": "def add(a, b):\n    return a + b\n", "json.py": "raise SystemExit('shadow')\n"}
    )
    config = make_config(
        write_script([{"task": "", "responses": [py("from calc import add\nFINAL(str(add(2, 3)))")]}])
    )
    result = engine.run(config, engine.prepare(config, str(repo)), "Add")
    assert result.status == "completed" and result.answer == "5", result.error
