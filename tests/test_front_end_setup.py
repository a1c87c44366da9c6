"""What every front end shares (issue 17): one `.env` reader, one logging set-up with redaction for
every command, one key preflight, and outcomes worded by each front end for itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bot.cli_run import CLI_WORDS
from bot.common.envfile import EnvFileError, read_env_file
from bot.pipeline.keys import MissingKey, missing_keys
from bot.rlm.config import load_config
from tests.conftest import py

SECRET = "sk-or-v1-0123456789abcdef0123456789"


def test_env_file_value_ends_before_its_comment(tmp_path):
    env = tmp_path / "app.env"
    env.write_text(
        f"LLM_API_KEY={SECRET} # the team's key\n"
        "export GITHUB_APP_ID=12345\n"
        "# a comment line\n"
        "QUOTED='a # b'\n"
        'SPACED="x y"\n'
    )
    values = read_env_file(env)
    assert values["LLM_API_KEY"] == SECRET  # the hand-written parser kept "# the team's key"
    assert values["GITHUB_APP_ID"] == "12345"
    assert values["QUOTED"] == "a # b" and values["SPACED"] == "x y"
    try:
        read_env_file(tmp_path / "missing.env")
    except EnvFileError as e:
        assert str(e).startswith("cannot read the env file") and str(e).endswith(".")
    else:
        raise AssertionError("a missing env file must be an error")


def test_cli_log_lines_are_redacted(tmp_path):
    """A secret from `--env-file` never reaches a log line of an `rlm` command."""
    env_file = tmp_path / "x.env"
    env_file.write_text(f"LLM_API_KEY={SECRET} # comment\n")
    code = (
        "import logging, os, sys\n"
        "from bot.cli import main\n"
        f"sys.argv = ['rlm', 'sandboxes', 'reap', '--env-file', {str(env_file)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "logging.getLogger('bot.test').warning('the key is %s', os.environ['LLM_API_KEY'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LLM_API_KEY", "DAYTONA_API_KEY")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert "the key is" in proc.stderr, proc.stderr
    assert SECRET not in proc.stderr and SECRET not in proc.stdout


def test_one_key_preflight():
    provider = load_config(None, {"model.name": "openrouter/some/model"}, environ={})
    scripted = load_config(None, {"model.name": "scripted/x.yaml"}, environ={})
    daytona = load_config(None, {"model.name": "scripted/x.yaml", "sandbox.backend": "daytona"}, environ={})
    assert missing_keys(provider, None, None) == [MissingKey.LLM]
    assert missing_keys(provider, "  ", None) == [MissingKey.LLM]
    assert missing_keys(provider, "key", None) == []
    assert missing_keys(scripted, None, None) == []
    assert missing_keys(daytona, None, "") == [MissingKey.DAYTONA]
    assert missing_keys(daytona, None, "key") == []


def test_a_cli_run_is_worded_for_the_cli(make_repo, write_script, tmp_path):
    """The pipeline words nothing for GitHub: a CLI run without changes says so in the CLI's words."""
    repo, _ = make_repo({"a.txt": "a\n"})
    script = write_script([{"task": "", "responses": [py('FINAL("nothing to change")')]}])
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "run", str(repo), "-p", "look", "--model", f"scripted/{script}"]
        + ["-q", "--json", "--results-dir", str(tmp_path / "r")],
        cwd=tmp_path,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["outcome"] == "answer"  # no change, and the root's answer is the result
    assert summary["message"] == CLI_WORDS.answered
    assert "pull request" not in proc.stdout + proc.stderr


def test_cli_words_carry_no_markdown_and_no_command_prefix(tmp_path):
    """The CLI's outcome sentences and saved-patch location are terminal text: no `/rlm`, no backticks."""
    from bot.pipeline import RunSettings

    settings = RunSettings(config=load_config(None, {}, environ={}), words=CLI_WORDS)
    assert settings.patch_location(tmp_path / "r.patch") == str(tmp_path / "r.patch")
    assert CLI_WORDS.prefix == "" and "/rlm" not in CLI_WORDS.cancelled.format(prefix=CLI_WORDS.prefix)
