"""What a real Python project meets (issue 21): a `src/` layout installed in editable mode by
`setup: auto` from PEP 735 dependency groups, a version file generated from `git describe` during
setup (as setuptools-scm does), tags, and history after the run's commit that agents must not see.

The project's build backend lives in the repository (no setuptools, no network): its editable build
writes `src/app/_version.py` from `git describe --tags`, like setuptools-scm, and points a `.pth` at
`src/`. Its test dependency (`shinylib`) is a wheel in the repository named by a dependency group.
"""

from __future__ import annotations

import json

import pytest

from bot.rlm import engine, read_events
from bot.rlm.environment import auto_commands, auto_plan, dependency_groups, manifests
from bot.rlm.repo import prepare_repo
from bot.rlm.sandbox import bwrap_works
from tests.conftest import commit_files, git, py
from tests.test_environment import WHEEL_WRITER, wheel_bytes

needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")

BACKEND = (
    WHEEL_WRITER
    + """
def _write_version():  # what setuptools-scm does on an editable install
    described = subprocess.run(["git", "describe", "--tags"], capture_output=True, text=True, check=True)
    with open("src/app/_version.py", "w") as f:
        f.write("version = %r\\n" % described.stdout.strip())

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _write_version()
    return _wheel(wheel_directory, {"app/__init__.py": open("src/app/__init__.py").read()})

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _write_version()
    return _wheel(wheel_directory, {"app.pth": os.path.join(os.getcwd(), "src") + "\\n"})
"""
)

WHEEL = "wheels/shinylib-1.0-py3-none-any.whl"
PROJECT = {
    "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["_build"]\n\n'
    '[project]\nname = "app"\nversion = "0.1"\n\n'
    "[dependency-groups]\n"
    f'test = ["shinylib @ file:///rlm/checkout/{WHEEL}"]\n'
    'dev = [{include-group = "test"}]\n'
    'docs = ["sphinx"]\n',
    ".gitignore": "src/app/_version.py\n",
    "_build/backend.py": BACKEND,
    "src/app/__init__.py": "from ._version import version\n\n\ndef shine():\n    return 'dull'\n",
    "tests/__init__.py": "",
    "tests/test_app.py": "import unittest\n\nimport app\nimport shinylib\n\n\nclass T(unittest.TestCase):\n"
    "    def test_shine(self):\n        self.assertEqual(app.shine(), shinylib.shine())\n",
    WHEEL: wheel_bytes("shinylib", "1.0", {"shinylib/__init__.py": 'def shine():\n    return "shiny"\n'}),
}
LATER_FIX = "return 'shiny'  # FIX-FROM-THE-FUTURE"

# Every agent: where it is, what imports and how, the version setup generated, and what of the
# repository's history it can reach.
PROBE = """
import glob, json, os, subprocess, sys
import app
def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout
gitdir = sh("git rev-parse --absolute-git-dir").strip()
alternates = open(gitdir + "/objects/info/alternates").read().strip()
store = os.path.dirname(alternates) if alternates else ""
facts = {
    "cwd": os.getcwd(),
    "executable": sys.executable,
    "app": app.__file__,
    "version": app.version,
    "describe": sh("git describe --tags").strip(),
    "log_all": sh("git log --all --format=%H%n%s") + (sh(f"git --git-dir={store} log --all --format=%H%n%s") if store else ""),
    "tags": sh("git tag") + (sh(f"git --git-dir={store} tag") if store else ""),
    "objects": sh(f"git --git-dir={store} cat-file --batch-all-objects --batch-check") if store else "",
    "cache_visible": os.path.exists(CACHE),
    "status": sh("git status --porcelain --ignored"),
}
"""


def make_project(make_repo):
    repo, _ = make_repo(PROJECT)
    git(repo, "tag", "v1.2.0")
    base = commit_files(repo, {"README.md": "# app\n"}, "docs")
    # After the run's commit: the fix the agents must not find, on main and on another branch, tagged.
    later = commit_files(
        repo,
        {"src/app/__init__.py": PROJECT["src/app/__init__.py"].replace("return 'dull'", LATER_FIX)},
        "fix",
    )
    git(repo, "tag", "-a", "v9.9.9", "-m", "the future")
    git(repo, "checkout", "-q", "-b", "other", base)
    commit_files(repo, {"OTHER.md": "FIX-FROM-THE-FUTURE\n"}, "other branch")
    git(repo, "checkout", "-q", "main")
    return repo, base, later


def blob_of(repo, rev, path) -> str:
    return git(repo, "rev-parse", f"{rev}:{path}")


@needs_bwrap
@pytest.mark.parametrize("checkouts", ["overlay", "copy"])
def test_a_src_layout_project_with_a_generated_version_and_later_history(
    make_repo, write_script, make_config, tmp_path, checkouts
):
    repo, base, later = make_project(make_repo)
    cache = tmp_path / "cache"
    probe = PROBE.replace("CACHE", repr(str(cache / "repos")))  # the repository cache
    script = write_script(
        [
            {
                "task": "^Probe as root",
                "responses": [
                    py(probe + "\nroot = facts\nkid = rlm_query('Probe as child')"),
                    py(
                        """
                        edit_file("src/app/__init__.py", "return 'dull'", "return 'shiny'")
                        r = subprocess.run([sys.executable, "-m", "unittest", "tests.test_app"], capture_output=True, text=True)
                        FINAL(json.dumps({"root": root, "child": json.loads(kid), "tests": r.returncode, "err": r.stderr[-500:]}))
                        """
                    ),
                ],
            },
            {"task": "^Probe as child", "responses": [py(probe + "\nFINAL(json.dumps(facts))")]},
        ]
    )
    config = make_config(script, sandbox__setup="auto", sandbox__checkouts=checkouts, rlm__max_depth=1)
    result = engine.run(config, engine.prepare(config, str(repo), commit=base), "Probe as root")
    assert result.status == "completed", result.error
    out = json.loads(result.answer)
    assert out["tests"] == 0, out["err"]  # shinylib from the dependency group, app from the checkout
    for who in ("root", "child"):
        f = out[who]
        # item 1: one interpreter, one checkout path, imports from the agent's own checkout
        assert f["executable"] == "/rlm/env/venv/bin/python", who
        assert f["cwd"] == "/rlm/checkout" and f["app"] == "/rlm/checkout/src/app/__init__.py", who
        # items 2 and 3: the version setup generated from the tag reaches every agent
        assert f["version"].startswith("v1.2.0-1-g"), (who, f["version"])
        assert f["describe"].startswith("v1.2.0-1-g"), (who, f["describe"])
        # item 3: nothing after the run's commit, by any git command or object listing
        assert base in f["log_all"] and later not in f["log_all"], who
        assert "FIX-FROM-THE-FUTURE" not in f["log_all"] and "other branch" not in f["log_all"], who
        assert "v1.2.0" in f["tags"] and "v9.9.9" not in f["tags"], who
        assert f["objects"] and blob_of(repo, later, "src/app/__init__.py") not in f["objects"], who
        assert blob_of(repo, "other", "OTHER.md") not in f["objects"], who
        assert f["cache_visible"] is False, who
        # item 2: setup's file is there but not a change of the agent's
        assert "src/app/_version.py" not in f["status"].replace("!! src/app/_version.py", ""), (
            who,
            f["status"],
        )
    # item 2: the generated file is not in the patch; the agent's edit is; importing the project
    # in the REPL left no bytecode in the checkout (a reviewing child's patch is empty)
    assert "_version.py" not in result.patch and "return 'shiny'" in result.patch
    assert "__pycache__" not in result.patch
    child = next(a for a in result.results["agents"] if a["id"] == "root.1")
    assert not child.get("patch"), child.get("patch", "")[:300]
    # item 1: the prompt's facts are measured in the sandbox, not guessed from the layout
    told = result.results["agents"][0]["iterations"][1]["prompt"]
    assert "`/rlm/env/venv/bin/python` (= `sys.executable`)" in told, told
    assert "`app` (`src/app`) import from YOUR checkout" in told
    assert "sys.path.insert" not in told and "PYTHONPATH=src" not in told
    assert "pytest is not installed; e.g. `sys.executable -m unittest`" in told  # measured, not assumed
    assert "`/rlm/checkout`" in told
    # item 4: the setup log says what auto chose
    started = next(e for e in read_events(result.events_path) if e["type"] == "setup_started")
    said = "the dependency group(s) test, dev of pyproject.toml"
    assert said in started["chosen"]
    (log,) = (tmp_path / "cache" / "envs").glob("*/setup.log")
    assert "setup auto installs: " + said in log.read_text().splitlines()[:3]


@needs_bwrap
def test_a_src_layout_without_an_install_is_told_how_to_import(make_repo, write_script, make_config):
    repo, _ = make_repo({"src/lib1/__init__.py": "X = 1\n", "tests/test_x.py": "import lib1\n"})
    script = write_script([{"task": ".", "responses": [py("x = 1"), py('FINAL("ok")')]}])
    config = make_config(script)
    result = engine.run(config, engine.prepare(config, str(repo)), "Look")
    told = result.results["agents"][0]["iterations"][1]["prompt"]
    assert "`lib1` (`src/lib1`) are not installed here" in told and "sys.path.insert(0, 'src')" in told


def test_a_prompt_written_before_any_repl_started_says_when_the_facts_come():
    from bot.rlm.prompts import UNMEASURED, SandboxFacts, system_prompt

    assert UNMEASURED in system_prompt(0, 1, "a" * 40, "goal")
    measured = system_prompt(0, 1, "a" * 40, "goal", facts=SandboxFacts(python="3.11", executable="/x"))
    assert UNMEASURED not in measured and "`/x` (= `sys.executable`)" in measured


def test_auto_reads_dependency_groups_extras_and_test_requirements(make_repo, tmp_path):
    repo, _ = make_repo(
        {
            "pyproject.toml": '[project]\nname = "p"\n[project.optional-dependencies]\ntesting = ["hypothesis"]\n'
            '[dependency-groups]\ntests = ["pytest>=8", {include-group = "lint"}]\nlint = ["ruff"]\n'
            'docs = ["sphinx"]\n',
            "requirements/test.txt": "coverage\n",
            "requirements/docs.txt": "sphinx\n",
            "test-requirements.txt": "mock\n",
        }
    )
    prepared = prepare_repo(str(repo), tmp_path / "cache")
    commands, chosen = auto_plan(prepared, manifests(prepared))
    assert commands == auto_commands(prepared, manifests(prepared))
    assert commands[1].endswith("-e '.[testing]'")
    assert commands[2].endswith("install --disable-pip-version-check 'pytest>=8' ruff")
    assert commands[3].endswith("-r test-requirements.txt") and commands[4].endswith(
        "-r requirements/test.txt"
    )
    assert not any("docs" in c or "sphinx" in c for c in commands)
    assert chosen == [
        "the project (pyproject.toml) in editable mode with its extras testing",
        "the dependency group(s) tests of pyproject.toml",
        "the requirement file(s) test-requirements.txt, requirements/test.txt",
    ]
    assert dependency_groups("[dependency-groups]\ndev = [{include-group = 'dev'}]\n") == ([], ["dev"])
