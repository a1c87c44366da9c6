"""action.yml, the example workflows and docs/action.md agree with the code that reads them."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml

from action import messages as m
from action.inputs import InputReader, Inputs, env_name
from action.main import SECRET_INPUTS, _mask_secrets
from action.outputs import OUTPUT_NAMES
from action.workflow import Runner

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
DOC = (ROOT / "docs" / "action.md").read_text(encoding="utf-8")
READ_CALL = re.compile(r"reader\.(?:get|boolean|integer|seconds|dollars)\(\s*\"([^\"]+)\"")


def declared_inputs() -> set[str]:
    return set(ACTION["inputs"])


def inputs_in_code() -> set[str]:
    """Every input name the action's code asks its InputReader for (static), plus SECRET_INPUTS."""
    names = set(SECRET_INPUTS)
    for path in (ROOT / "action").glob("*.py"):
        names |= set(READ_CALL.findall(path.read_text(encoding="utf-8")))
    return names


def run_step() -> dict:
    (step,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "run"]
    return step


def test_every_input_read_is_declared_and_every_declared_input_is_read():
    assert inputs_in_code() == declared_inputs()
    reader = InputReader({})
    _mask_secrets(Runner(None, None, out=io.StringIO()), reader, {})
    Inputs.read(reader)
    assert reader.read == declared_inputs()


def test_every_input_is_documented_with_a_default_and_passed_through_env():
    env = run_step()["env"]
    for name, spec in ACTION["inputs"].items():
        assert spec.get("description"), name
        assert "default" in spec, name
        assert env[env_name(name)] == f"${{{{ inputs.{name} }}}}", name
    assert set(env) == {env_name(n) for n in declared_inputs()}


def test_no_expression_is_pasted_into_a_shell_script():
    for step in ACTION["runs"]["steps"]:
        if "run" in step:
            assert "${{" not in step["run"], step.get("name")
            assert step["shell"] == "bash"


def test_composite_install_run_and_artifacts():
    runs = ACTION["runs"]
    assert runs["using"] == "composite"
    scripts = "\n".join(s.get("run", "") for s in runs["steps"])
    assert "pip install --quiet --disable-pip-version-check" in scripts
    assert '--constraint "$GITHUB_ACTION_PATH/constraints.txt" "$GITHUB_ACTION_PATH[$extras]"' in scripts
    assert "bubblewrap" in scripts
    assert "-P -m action" in run_step()["run"]
    (upload,) = [s for s in runs["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert upload["if"].startswith("always()")
    assert upload["with"]["path"] == "${{ steps.run.outputs.artifact-dir }}"


def test_outputs_are_the_step_outputs():
    assert tuple(ACTION["outputs"]) == OUTPUT_NAMES
    for name, spec in ACTION["outputs"].items():
        assert spec["value"] == f"${{{{ steps.run.outputs.{name} }}}}"
        assert spec.get("description")
    described = ACTION["outputs"]["conclusion"]["description"]
    assert all(c in described for c in m.CONCLUSIONS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_use_declared_inputs_minimal_permissions_and_appear_in_the_doc(path: Path):
    text = path.read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    (job,) = workflow["jobs"].values()
    assert set(job["permissions"]) <= {"contents", "pull-requests", "issues"}
    assert job["permissions"]["contents"] == "write" and job["permissions"]["pull-requests"] == "write"
    (step,) = [s for s in job["steps"] if "rlm-bot@" in str(s.get("uses", ""))]
    assert set(step["with"]) <= declared_inputs()
    assert "llm-api-key" in step["with"]
    for other in job["steps"]:
        assert "${{" not in other.get("run", "")
    assert text.rstrip() in DOC


def test_comment_example_cannot_be_cancelled_by_its_own_status_comment():
    workflow = yaml.safe_load((ROOT / "examples/workflows/rlm-comment.yml").read_text(encoding="utf-8"))
    triggers = workflow.get("on") or workflow.get(True)  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"issue_comment", "pull_request_review_comment"}
    (job,) = workflow["jobs"].values()
    assert job["concurrency"]["cancel-in-progress"] is False
    assert "github.event.issue.number" in job["concurrency"]["group"]
    assert job["permissions"]["issues"] == "write"
    assert "'Bot'" in job["if"]


def test_doc_tables_list_every_input_output_and_conclusion():
    for name in declared_inputs():
        assert f"| `{name}` |" in DOC
    for name in OUTPUT_NAMES:
        assert f"| `{name}` |" in DOC
    for conclusion in m.CONCLUSIONS:
        assert f"`{conclusion}`" in DOC
