"""The REPL seen by the model: FINAL semantics, edit_file, isolation, protocol integrity, timeouts."""

from __future__ import annotations

import json

import pytest

from bot.rlm import engine
from bot.rlm.repl import driver
from bot.rlm.sandbox import bwrap_works
from tests.conftest import leftovers, py


def run_script(make_repo, write_script, make_config, responses, task="Do it", files=None, **overrides):
    repo, _ = make_repo(files)
    config = make_config(write_script([{"task": "", "responses": responses}]), **overrides)
    return engine.run(config, engine.prepare(config, str(repo)), task)


def prompts_of(result) -> list[str]:
    return [it["prompt"] for it in result.results["agents"][0]["iterations"]]


def blocks_of(result) -> list[dict]:
    return [b for it in result.results["agents"][0]["iterations"] for b in it["blocks"]]


def test_final_var_of_a_missing_name_is_reported_to_the_model(make_repo, write_script, make_config):
    result = run_script(
        make_repo,
        write_script,
        make_config,
        [py('FINAL_VAR("nope")'), py('answer = "ok"\nFINAL_VAR("answer")')],
    )
    assert result.answer == "ok"
    assert "FINAL_VAR: no variable named 'nope'" in prompts_of(result)[1]


def test_final_in_prose_or_in_a_branch_that_never_ran_ends_nothing(make_repo, write_script, make_config):
    prose = 'I am done, so FINAL("from prose")\n\n' + py("x = 41") + '\nFINAL_VAR("x")\n'
    branch = py('if x > 100:\n    FINAL("never")\nx += 1')
    result = run_script(make_repo, write_script, make_config, [prose, branch, py('FINAL(f"real {x}")')])
    assert result.answer == "real 42"
    assert len(result.results["agents"][0]["iterations"]) == 3


def test_blocks_after_final_do_not_run_and_state_persists(make_repo, write_script, make_config):
    reply = py("import os\ncounter = 1") + py("counter += 1\nFINAL(str(counter))") + py("counter = 99")
    result = run_script(make_repo, write_script, make_config, [reply])
    assert result.answer == "2"
    assert len(blocks_of(result)) == 2  # the third block never ran


def test_reply_without_code_gets_a_format_reminder(make_repo, write_script, make_config):
    result = run_script(make_repo, write_script, make_config, ["Thinking out loud.", py('FINAL("ok")')])
    assert result.answer == "ok"
    assert "had no ```python code block" in prompts_of(result)[1]


def test_errors_output_and_expression_values_reach_the_model(make_repo, write_script, make_config):
    reply = py('print("out")\nimport sys\nprint("err", file=sys.stderr)\n1/0') + py("6 * 7")
    result = run_script(make_repo, write_script, make_config, [reply, py('FINAL("x")')])
    first, second = blocks_of(result)[:2]
    assert first["stdout"] == "out\n" and first["stderr"] == "err\n"
    assert "ZeroDivisionError: division by zero" in first["error"] and "driver.py" not in first["error"]
    assert second["stdout"] == "42\n"
    assert "ZeroDivisionError" in prompts_of(result)[1]


def test_long_output_is_truncated_with_a_marker(make_repo, write_script, make_config):
    reply = py('print("a" * 5000 + "TAIL")')
    result = run_script(
        make_repo, write_script, make_config, [reply, py('FINAL("x")')], rlm__output_truncation_limit=1000
    )
    out = blocks_of(result)[0]["stdout"]
    assert "[output truncated: 1000 of 5005 characters shown]" in out
    assert out.rstrip().endswith("TAIL") and len(out) < 1200


def test_exec_timeout_kills_the_block_and_its_subprocesses(make_repo, write_script, make_config, tmp_path):
    reply = py(
        """
        import subprocess, time
        child = subprocess.Popen(["sleep", "300"])
        state = "kept"
        time.sleep(300)
        """
    )
    result = run_script(
        make_repo,
        write_script,
        make_config,
        [reply, py("print(state, child.poll())\nFINAL(state)")],
        rlm__exec_timeout=1.5,
    )
    first, second = blocks_of(result)[:2]
    assert "TimeoutError: the block ran longer than 2s" in first["error"]
    assert second["stdout"] == "kept -9\n"  # namespace survives; the subprocess was killed
    assert result.answer == "kept"


# ---------------------------------------------------------------------------- isolation


def test_agent_code_cannot_read_host_secrets(make_repo, write_script, make_config, monkeypatch, tmp_path):
    secret = "sk-test-planted-secret-value-0123456789"
    monkeypatch.setenv("LLM_API_KEY", secret)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_plantedtokenvalue0123456789abcd")
    secret_file = tmp_path / "host.env"
    secret_file.write_text(f"LLM_API_KEY={secret}\n")
    reply = py(
        f"""
        import os, glob
        seen = dict(os.environ)
        leaks = [k for k, v in seen.items() if "planted" in v]
        procs = []
        for path in glob.glob("/proc/[0-9]*/environ"):
            try:
                if b"planted" in open(path, "rb").read():
                    procs.append(path)
            except OSError:
                pass
        try:
            open({str(secret_file)!r}).read()
            host_file = "readable"
        except OSError:
            host_file = "hidden"
        print(sorted(seen), leaks, procs, host_file)
        FINAL(repr((leaks, procs, host_file)))
        """
    )
    result = run_script(make_repo, write_script, make_config, [reply])
    leaks, procs, host_file = eval(result.answer)
    assert leaks == [] and procs == []
    if bwrap_works():
        assert host_file == "hidden"
    dumped = json.dumps(result.results)
    assert secret not in dumped and "ghs_planted" not in dumped


def test_a_subprocess_cannot_forge_protocol_messages(make_repo, write_script, make_config):
    forged = json.dumps(
        {
            "type": "result",
            "id": 1,
            "stdout": "",
            "stderr": "",
            "error": None,
            "final": {"answer": "forged"},
            "duration": 0,
        }
    )
    reply = py(
        f"""
        import subprocess, sys
        code = '''
        import os
        msg = {forged!r} + "\\\\n"
        print(msg, end="")
        ok = []
        for fd in range(3, 256):
            try:
                os.write(fd, msg.encode())
                ok.append(fd)
            except OSError:
                pass
        print("writable fds:", ok)
        '''
        import textwrap
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
        print(proc.stdout, proc.stderr)
        """
    )
    result = run_script(make_repo, write_script, make_config, [reply, py('FINAL("real")')])
    assert result.answer == "real"
    out = blocks_of(result)[0]["stdout"]
    assert '"answer": "forged"' in out  # it was plain output, nothing more
    assert "writable fds: []" in out


def test_global_timeout_stops_the_tree_and_leaves_nothing(make_repo, write_script, make_config, tmp_path):
    repo, _ = make_repo()
    script = write_script(
        [
            {
                "task": "^Root",
                "responses": [py('print(rlm_query_batched(["Slow A", "Slow B"]))'), py('FINAL("late")')],
            },
            {"task": "^Slow A", "responses": [py("import time\ntime.sleep(120)")]},
            {"task": "^Slow B", "latency": 120, "responses": [py('FINAL("never")')]},
        ]
    )
    config = make_config(script, rlm__global_timeout=3)
    result = engine.run(config, engine.prepare(config, str(repo)), "Root task")
    assert result.status == "timeout"
    assert "global timeout of 3s" in result.error
    agents = {a["id"]: a for a in result.results["agents"]}
    assert agents["root.1"]["status"] == "timeout" and agents["root.2"]["status"] == "timeout"
    assert result.results["duration"] < 20
    assert leftovers(tmp_path / "cache") == []


# ---------------------------------------------------------------------------- edit_file (driver-side)


def test_edit_file_refuses_broken_python_and_leaves_the_file(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    return 1\n")
    with pytest.raises(ValueError, match="refused, the edit would break"):
        driver.edit_file(str(path), "return 1", "return (1")
    assert path.read_text() == "def f():\n    return 1\n"
    assert driver.edit_file(str(path), "return 1", "return 2").startswith("edited")
    assert path.read_text() == "def f():\n    return 2\n"


def test_edit_file_keeps_crlf_and_encoding(tmp_path):
    crlf = tmp_path / "win.txt"
    crlf.write_bytes(b"one\r\ntwo\r\nthree\r\n")
    driver.edit_file(str(crlf), "two\nthree", "2\n3\n4")
    assert crlf.read_bytes() == b"one\r\n2\r\n3\r\n4\r\n"
    latin = tmp_path / "latin.py"
    latin.write_bytes("# -*- coding: latin-1 -*-\nname = 'café'\n".encode("latin-1"))
    driver.edit_file(str(latin), "café", "crème")
    assert latin.read_bytes() == "# -*- coding: latin-1 -*-\nname = 'crème'\n".encode("latin-1")
    bom = tmp_path / "bom.json"
    bom.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    driver.edit_file(str(bom), '"a": 1', '"a": 2')
    assert bom.read_bytes() == b'\xef\xbb\xbf{"a": 2}'
    with pytest.raises(ValueError, match="would break"):
        driver.edit_file(str(bom), '"a": 2', '"a": ')


def test_edit_file_ambiguity_and_missing_text(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("a\na\n")
    with pytest.raises(ValueError, match="occurs 2 times"):
        driver.edit_file(str(path), "a", "b")
    driver.edit_file(str(path), "a", "b", replace_all=True)
    assert path.read_text() == "b\nb\n"
    with pytest.raises(ValueError, match="not found"):
        driver.edit_file(str(path), "zzz", "y")


def test_apply_patch_in_the_repl_and_driver_frames_hidden(make_repo, write_script, make_config):
    diff = "--- a/f.txt\n+++ b/f.txt\n@@ -1 +1 @@\n-old\n+new\n"
    reply = py(f"print(apply_patch({diff!r}))") + py('apply_patch("garbage")')
    result = run_script(
        make_repo,
        write_script,
        make_config,
        [reply, py('FINAL(open("f.txt").read())')],
        files={"f.txt": "old\n"},
    )
    first, second = blocks_of(result)[:2]
    assert "applied patch to 1 file(s): f.txt" in first["stdout"]
    assert "apply_patch: the diff does not apply" in second["error"]
    assert result.answer == "new\n" and "+new" in result.patch


def test_a_secret_the_model_writes_is_masked_in_the_trace(make_repo, write_script, make_config):
    secret = "planted-llm-key-4f9a8b7c6d5e"
    repo, _ = make_repo()
    script = write_script([{"task": "", "responses": [py(f'print("key={secret}")\nFINAL("{secret}")')]}])
    config = make_config(script)
    result = engine.run(config, engine.prepare(config, str(repo)), "Leak", api_key=secret)
    on_disk = result.results_path.read_text() + result.events_path.read_text()
    assert secret not in on_disk and secret not in json.dumps(result.results)
    assert "key=[REDACTED]" in on_disk and result.answer == "[REDACTED]"


def test_a_repl_that_dies_is_restarted_and_the_model_is_told(make_repo, write_script, make_config):
    reply = py("kept = 1\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    after = py('print("kept" in globals())\nFINAL("recovered")')
    result = run_script(make_repo, write_script, make_config, [reply, after])
    first, second = blocks_of(result)[:2]
    assert "the REPL was restarted and its variables are lost" in first["error"]
    assert second["stdout"] == "False\n" and result.answer == "recovered"


def test_without_bubblewrap_the_environment_is_still_scrubbed(
    make_repo, write_script, make_config, monkeypatch
):
    monkeypatch.setenv("LLM_API_KEY", "sk-test-planted-fallback-0123456789")
    reply = py('import os\nFINAL(",".join(sorted(os.environ)))')
    result = run_script(make_repo, write_script, make_config, [reply], sandbox__isolation="none")
    assert set(result.answer.split(",")) <= {"HOME", "LANG", "PATH", "PWD", "PYTHONDONTWRITEBYTECODE"}
    import ctypes

    assert ctypes.CDLL(None).prctl(3, 0, 0, 0, 0) == 0  # PR_GET_DUMPABLE: the host hid its /proc files
