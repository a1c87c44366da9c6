"""Make a task's offline repository: the upstream base commit's tree as a one-commit history.

    python bench/tasks/make_bundle.py SOURCE BASE_SHA OUT.bundle [URL]

SOURCE is the upstream URL (or a local clone of it: then URL names the upstream). The bundle holds one commit, `refs/heads/main`,
whose tree is exactly BASE_SHA's, with BASE_SHA's author, committer and dates, and a message
naming the upstream commit; so it is small, needs no network, and shows the agents nothing after
the base (not even the base's ancestors). The same inputs give the same commit id every time.
Prints that commit id: it is the task's `commit:` in tasks.yaml.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def git(*args: str, cwd: str, env: dict | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_bundle(source: str, base: str, out: str, url: str | None = None) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        git("init", "--quiet", "--bare", tmp, cwd=tmp)
        git("fetch", "--quiet", "--no-tags", source, base, cwd=tmp)
        fmt = "%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI"
        an, ae, ad, cn, ce, cd = git("log", "-1", f"--format={fmt}", base, cwd=tmp).split("\0")
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": an,
            "GIT_AUTHOR_EMAIL": ae,
            "GIT_AUTHOR_DATE": ad,
            "GIT_COMMITTER_NAME": cn,
            "GIT_COMMITTER_EMAIL": ce,
            "GIT_COMMITTER_DATE": cd,
        }
        message = f"Upstream {url or source} at {base}, as one commit (history left out)\n"
        commit = subprocess.run(
            ["git", "commit-tree", f"{base}^{{tree}}"],
            cwd=tmp,
            env=env,
            input=message,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        git("update-ref", "refs/heads/main", commit, cwd=tmp)
        git("symbolic-ref", "HEAD", "refs/heads/main", cwd=tmp)
        git("bundle", "create", "--quiet", os.path.abspath(out), "refs/heads/main", cwd=tmp)
    return commit


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    print(make_bundle(*sys.argv[1:]))
