"""What `rlm run` finds out before fetching anything (bot/cli_checks.py), on real git repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot import cli_checks as c
from bot.rlm import load_config
from tests.conftest import git


def check(config) -> None:
    """As `rlm run` calls it: after the one key preflight."""
    import os

    from bot.pipeline.keys import MissingKey, missing_keys

    missing = missing_keys(config, os.environ.get("LLM_API_KEY"), None)
    c.check_model(config, llm_key_missing=MissingKey.LLM in missing)


def test_the_root_is_found_from_a_subdirectory(make_repo):
    repo, _ = make_repo({"README.md": "x\n", "sub/deeper/a.py": "a = 1\n"})
    found = c.local_repo(str(repo / "sub" / "deeper"))
    assert found == c.LocalRepo(repo.resolve())
    assert c.local_repo(str(repo)) == c.LocalRepo(repo.resolve())


def test_a_url_is_left_to_the_fetch():
    assert c.local_repo("https://github.com/o/r.git") is None
    assert c.local_repo("git@github.com:o/r.git") is None
    assert c.local_repo("file:///srv/r.git") is None


def test_a_bare_repository_is_its_own_root(make_repo, tmp_path):
    repo, _ = make_repo()
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    assert c.local_repo(str(bare)) == c.LocalRepo(bare.resolve(), bare=True)


def test_outside_a_repository_git_s_own_words_are_shown(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(c.UsageError) as e:
        c.local_repo(str(plain))
    text = str(e.value)
    assert "not a git repository" in text  # git's own error, not "could not fetch"
    assert text.startswith(f"{plain} is not inside a git repository") and text.count(".") >= 1
    with pytest.raises(c.UsageError, match="neither a URL nor an existing directory"):
        c.local_repo(str(tmp_path / "missing"))
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(c.UsageError, match="it is not a directory"):
        c.local_repo(str(tmp_path / "f.txt"))


def test_uncommitted_changes_are_named_in_one_line(make_repo):
    repo, _ = make_repo({"a.py": "a\n", "b.py": "b\n", "c.py": "c\n"})
    assert c.uncommitted_changes(repo) == [] and c.uncommitted_warning([]) is None
    (repo / "a.py").write_text("changed\n")
    (repo / "new file.txt").write_text("new\n")
    git(repo, "mv", "b.py", "renamed.py")
    paths = c.uncommitted_changes(repo)
    assert sorted(paths) == ["a.py", "new file.txt", "renamed.py"]
    line = c.uncommitted_warning(paths)
    assert "\n" not in line and line.startswith("warning: 3 uncommitted change(s) are not part of the run")
    assert all(p in line for p in paths)
    many = c.uncommitted_warning([f"f{i}" for i in range(8)])
    assert "f4" in many and "f5" not in many and "and 3 more" in many


def test_results_go_to_the_user_cache_unless_told(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    default = load_config(None, environ={})
    assert c.results_dir(None, default) == tmp_path / "xdg" / "rlm-bot" / "results"
    assert c.results_dir(tmp_path / "mine", default) == tmp_path / "mine"
    chosen = load_config(None, {"results_dir": str(tmp_path / "cfg")}, environ={})
    assert c.results_dir(None, chosen) == tmp_path / "cfg"


def test_a_scripted_model_needs_an_existing_valid_file(tmp_path):
    missing = load_config(None, {"model.name": f"scripted/{tmp_path / 'nope.yaml'}"}, environ={})
    with pytest.raises(c.UsageError, match="does not exist"):
        check(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: a mapping\n")
    with pytest.raises(c.UsageError, match="must be a non-empty list of rules"):
        check(load_config(None, {"model.name": f"scripted/{bad}"}, environ={}))
    good = tmp_path / "good.yaml"
    good.write_text("- task: ''\n  responses: ['x']\n")
    check(load_config(None, {"model.name": f"scripted/{good}"}, environ={}))


def test_model_names_and_keys_are_checked_with_litellm(monkeypatch):
    for name in ("LLM_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(c.UsageError) as e:
        check(load_config(None, {"model.name": "not-a-model"}, environ={}))
    assert "'not-a-model' is not a model litellm knows" in str(e.value)
    claude = load_config(None, {"model.name": "anthropic/claude-sonnet-4-5"}, environ={})
    with pytest.raises(c.UsageError) as e:
        check(claude)
    text = str(e.value)
    assert "LLM_API_KEY" in text and "ANTHROPIC_API_KEY" in text and "--env-file" in text
    assert text.count(". ") == 0 and text.endswith(".")  # one sentence
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")  # litellm reads the provider's own variable
    check(claude)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("LLM_API_KEY", "k")
    check(claude)
    monkeypatch.delenv("LLM_API_KEY")
    local = load_config(
        None, {"model.name": "openai/local", "model.api_base": "http://127.0.0.1:9"}, environ={}
    )
    check(local)  # a self-hosted server needs no key


def test_results_are_never_written_into_the_repository_by_default(make_repo, monkeypatch, tmp_path):
    repo, _ = make_repo()
    monkeypatch.chdir(repo)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    where = c.results_dir(None, load_config(None, environ={}))
    assert Path(repo) not in where.parents and where == tmp_path / "home" / ".cache" / "rlm-bot" / "results"
