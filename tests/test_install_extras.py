"""`pip install rlm-bot` is the CLI with the local sandbox; the App's libraries come with extras
([app], [postgres], [daytona]). The CLI's whole path (`import bot.cli`, `rlm run` with the scripted
model through litellm and real sandboxes) must import none of them, or a CLI-only install breaks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# Top-level modules of the App's extras: flask, waitress, PyGithub, gidgethub, psycopg, the
# Daytona SDK, prometheus_client (and what they alone pull).
APP_ONLY = ("flask", "werkzeug", "waitress", "github", "gidgethub", "psycopg", "daytona", "prometheus_client")

PROBE = """
import json, sys
from bot.rlm import demo
repo, script = demo.materialize()
sys.argv = ["rlm", "run", str(repo), "-p", demo.PROMPT, "--model", f"scripted/{script}", "-q",
            "-o", sys.argv[1], "--results-dir", sys.argv[2]]
import bot.cli
try:
    bot.cli.main()
    code = 0
except SystemExit as e:
    code = e.code
print("PROBE", json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_the_cli_path_imports_nothing_from_the_apps_extras(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "out.patch"), str(tmp_path / "results")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("PROBE ")), None)
    assert line, done.stdout[-2000:] + done.stderr[-2000:]
    probe = json.loads(line[len("PROBE ") :])
    assert probe["code"] == 0, done.stderr[-2000:]
    assert (tmp_path / "out.patch").read_text().startswith("diff --git")
    assert "litellm" in probe["modules"] and "bot" in probe["modules"]
    assert not set(APP_ONLY) & set(probe["modules"]), sorted(set(APP_ONLY) & set(probe["modules"]))


def _requirements(extra: str | None) -> set[str]:
    """Distribution names the base install (None) or one extra asks for, normalised."""
    names = set()
    for req in metadata.requires("rlm-bot") or []:
        spec, _, marker = req.partition(";")
        if (extra is None and "extra ==" not in marker) or (extra and f'extra == "{extra}"' in marker):
            names.add(re.split(r"[\s\[<>=!~]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_the_base_install_is_the_cli_and_extras_add_the_rest():
    base = _requirements(None)
    assert {"litellm", "typer", "pyyaml", "pydantic", "rich"} <= base
    app = {"flask", "waitress", "pygithub", "gidgethub", "prometheus-client"}
    assert not base & (app | {"psycopg", "daytona"})
    assert app <= _requirements("app")
    assert _requirements("postgres") == {"psycopg"} and _requirements("daytona") == {"daytona"}
    assert "rlm-bot" in _requirements("test")  # [test] pulls every extra: the README's install


def test_an_app_command_without_the_app_extra_says_what_to_install(tmp_path: Path):
    for command in ("serve", "worker"):
        code = f"import sys; sys.modules['flask'] = None; sys.argv = ['rlm', '{command}']; import bot.cli; bot.cli.main()"
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        out = " ".join(done.stderr.split())
        assert done.returncode == 2, out
        assert f"rlm {command} needs the GitHub App's libraries (flask is not installed)" in out
        assert "pip install 'rlm-bot[app]'" in out and "Traceback" not in out
