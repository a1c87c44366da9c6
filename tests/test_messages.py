"""Messages that say what happened (issue 21 item 5): an unclosed fence is named as such, one block
numbering in results and tracebacks, invisible characters shown in edit_file's closest lines, a
child's diff that ends with a blank line applies, the prompt's advice on children's patches."""

from __future__ import annotations

import pytest

from bot.rlm import engine, prompts
from bot.rlm.repl import driver
from tests.conftest import py


def run_script(make_repo, write_script, make_config, responses, files=None, **overrides):
    repo, _ = make_repo(files)
    config = make_config(write_script([{"task": "", "responses": responses}]), **overrides)
    return engine.run(config, engine.prepare(config, str(repo)), "Do it")


def prompts_of(result) -> list[str]:
    return [it["prompt"] for it in result.results["agents"][0]["iterations"]]


def test_an_unclosed_fence_is_named_as_such(make_repo, write_script, make_config):
    cut = "Let me look.\n```python\nprint('hello')\n"  # the reply ended before its closing fence
    result = run_script(make_repo, write_script, make_config, [cut, "No code here.", py('FINAL("ok")')])
    assert result.answer == "ok"
    said = prompts_of(result)
    assert prompts.UNCLOSED_FENCE_MESSAGE in said[1]
    assert "had no ```python code block" not in said[1]
    assert prompts.NO_CODE_MESSAGE in said[2]  # a reply with no fence at all is still told so


def test_block_numbers_agree_between_results_and_tracebacks(make_repo, write_script, make_config):
    first = py("x = 1") + py("y = 2")
    second = py("def boom():\n    raise ValueError('bad')") + py("boom()")
    result = run_script(make_repo, write_script, make_config, [first, second, py('FINAL("ok")')])
    told = prompts_of(result)[2]  # the results of the second reply: blocks 3 and 4 of this agent
    assert "[block 3]" in told and "[block 4]" in told
    assert '"<block 4>"' in told and '"<block 3>"' in told  # the traceback names the same numbers
    assert "[block 1]" not in told


def test_edit_file_shows_a_non_breaking_space_visibly(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    total\u00a0= 1\n    return total\n", encoding="utf-8")
    with pytest.raises(ValueError) as e:
        driver.edit_file(str(f), "    total = 1\n", "    total = 2\n")
    text = str(e.value)
    assert "repr: '    total\\xa0= 1'" in text
    assert "\\xa0" in text and "\u00a0" not in text  # copyable: the escape, not the character
    # the escape the message shows, put in `old`, makes the edit
    driver.edit_file(str(f), "    total\xa0= 1\n", "    total = 2\n")
    assert "total = 2" in f.read_text(encoding="utf-8")


def test_a_plain_line_is_shown_as_is(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    total = 1\n", encoding="utf-8")
    with pytest.raises(ValueError) as e:
        driver.edit_file(str(f), "    totl = 1\n", "x = 2\n")
    assert "repr:" not in str(e.value) and "|     total = 1" in str(e.value)


def test_a_child_diff_ending_with_a_blank_line_applies(make_repo, write_script, make_config):
    # A diff as git writes it, followed by one blank line: `git apply --check` accepts it.
    diff = "diff --git a/f.txt b/f.txt\n--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n\n"
    result = run_script(
        make_repo,
        write_script,
        make_config,
        [py(f"print(apply_patch({diff!r}))"), py('FINAL(open("f.txt").read())')],
        files={"f.txt": "a\nb\nc\n"},
    )
    assert result.answer == "a\nB\nc\n", prompts_of(result)[1]


def test_a_hand_written_diff_with_wrong_counts_still_applies(tmp_path, monkeypatch):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f.txt").write_text("a\nb\nc\n")
    monkeypatch.chdir(tmp_path)
    diff = "--- a/f.txt\n+++ b/f.txt\n@@ -1,9 +1,9 @@\n a\n-b\n+B\n c\n"  # counts made up
    assert "applied patch to 1 file(s)" in driver.apply_patch(diff)
    assert (tmp_path / "f.txt").read_text() == "a\nB\nc\n"


def test_the_prompt_does_not_ask_to_apply_a_reviewing_childs_patch():
    text = prompts.system_prompt(0, 2, "a" * 40, "goal")
    assert "When you asked it to change files" in text
    assert (
        "only\nasked to read, review or test" in text
        or "only asked to read, review or test" in text.replace("\n", " ")
    )
