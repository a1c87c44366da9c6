"""What a release people can pin is made of: the lock every install uses, the files beside it, and
the Action documented by its major tag."""

import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), f"not an exact pin: {line}"
            pins[_name(name)] = version
    return pins


def test_the_lock_pins_every_dependency_exactly():
    wanted = [r for r in metadata.requires("rlm-bot") or [] if 'extra == "test"' not in r]
    pins = _pins()
    missing = sorted({_name(r) for r in wanted if not r.startswith("rlm-bot")} - set(pins))
    assert not missing, f"constraints.txt lacks {missing}: run deploy/lock.sh"


def test_image_and_action_install_from_the_lock():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM debian:bookworm-slim" in dockerfile and "--constraint /src/constraints.txt" in dockerfile
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "rlm"]' in dockerfile and "USER rlm" in dockerfile
    action = (ROOT / "action.yml").read_text(encoding="utf-8")
    assert '--constraint "$GITHUB_ACTION_PATH/constraints.txt"' in action
    assert "ARG RLM_EXTRAS=app,postgres,daytona" in dockerfile  # the image is the App's set


def test_release_files_and_the_action_pinned_by_its_major_tag():
    for name in ("LICENSE", "SECURITY.md", "CHANGELOG.md"):
        assert (ROOT / name).is_file(), name
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    docs = [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "examples" / "workflows").glob("*.yml"),
    ]
    for path in docs:
        assert "rlm-bot@main" not in path.read_text(encoding="utf-8"), path
    assert "your-org/rlm-bot@v1" in (ROOT / "docs" / "action.md").read_text(encoding="utf-8")
    assert "## Versions" in (ROOT / "docs" / "action.md").read_text(encoding="utf-8")


def test_rlm_version_is_the_package_metadata():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "bot", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == f"rlm-bot {metadata.version('rlm-bot')}"
