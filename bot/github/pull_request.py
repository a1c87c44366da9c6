"""A patch becomes a pull request through the Git Data API: blobs, tree, commit, ref, pull.

No clone is pushed: the new contents of each changed file come from applying the patch to the
base commit in the host's cache (binary-safe), and GitHub builds the tree on the base tree, so
deletions and file modes survive exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.rlm.patch import FileChange, changed_files
from bot.rlm.repo import PreparedRepo, git

from .api import GitHubAPI, GitHubError

log = logging.getLogger(__name__)

WORKFLOWS_DIR = ".github/workflows/"
REASON_NO_CHANGES = "the patch changes no files"
REASON_ONLY_WORKFLOWS = "every changed file is under .github/workflows/, which this app may not push"


BOT_BRANCH_PREFIX = "rlm/"


@dataclass
class PushOutcome:
    sha: str | None  # the new commit; None when nothing could be pushed (see reason)
    branch: str
    skipped_workflow_files: list[str] = field(default_factory=list)
    reason: str | None = None


@dataclass
class PROutcome:
    url: str | None
    number: int | None
    branch: str | None
    skipped_workflow_files: list[str] = field(default_factory=list)
    reason: str | None = None  # why there is no PR, when url is None


def co_author(requester: str) -> str:
    """`login` becomes `login <login@users.noreply.github.com>`; `Name <email>` is kept."""
    if "<" in requester and requester.rstrip().endswith(">"):
        return requester.strip()
    return f"{requester} <{requester}@users.noreply.github.com>"


def commit_message(title: str, requester: str) -> str:
    return f"{title}\n\nCo-authored-by: {co_author(requester)}\n"


def _tree_entry(change: FileChange, blob_sha: str | None) -> dict:
    if change.deleted:
        return {"path": change.path, "mode": "100644", "type": "blob", "sha": None}
    return {"path": change.path, "mode": change.mode or "100644", "type": "blob", "sha": blob_sha}


def _commit(api: GitHubAPI, repo: str, prepared: PreparedRepo, patch: str, title: str, requester: str,
            can_push_workflows: bool) -> tuple[str | None, list[str], str | None]:  # fmt: skip
    """A commit of `patch` whose parent is prepared.commit: (sha or None, workflow files left out, reason)."""
    changes = changed_files(prepared.cache, prepared.commit, patch)
    skipped = [] if can_push_workflows else [c.path for c in changes if c.path.startswith(WORKFLOWS_DIR)]
    changes = [c for c in changes if c.path not in skipped]
    if not changes:
        return None, skipped, REASON_ONLY_WORKFLOWS if skipped else REASON_NO_CHANGES
    entries = []
    for change in changes:
        sha = None if change.deleted else api.create_blob(repo, change.content or b"")
        entries.append(_tree_entry(change, sha))
    base_tree = (
        git("rev-parse", f"{prepared.commit}^{{tree}}", git_dir=prepared.cache).stdout.decode().strip()
    )
    tree = api.create_tree(repo, base_tree, entries)
    return api.create_commit(repo, commit_message(title, requester), tree, [prepared.commit]), skipped, None


def created_by_bot(pull: dict, repo: str) -> bool:
    """A same-repository PR whose head branch this bot made (`rlm/…`, opened by a bot account)."""
    head = pull.get("head") or {}
    same_repo = ((head.get("repo") or {}).get("full_name") or "").lower() == repo.lower()
    by_bot = (pull.get("user") or {}).get("type") == "Bot"
    return same_repo and by_bot and str(head.get("ref") or "").startswith(BOT_BRANCH_PREFIX)


def push_commit(api: GitHubAPI, repo: str, *, prepared: PreparedRepo, patch: str, branch: str, title: str,
                requester: str, can_push_workflows: bool = False) -> PushOutcome:  # fmt: skip
    """One commit on top of `branch`, whose head is prepared.commit (where the agents worked).
    Fast-forward only: if the branch moved meanwhile, GitHub refuses and GitHubError (422) is raised."""
    commit, skipped, reason = _commit(api, repo, prepared, patch, title, requester, can_push_workflows)
    if commit is not None:
        api.update_ref(repo, f"heads/{branch}", commit)
    return PushOutcome(commit, branch, skipped, reason)


def open_pull_request(
    api: GitHubAPI,
    repo: str,
    *,
    prepared: PreparedRepo,
    patch: str,
    base_branch: str,
    title: str,
    body: str,
    requester: str,
    branch_name: str,
    draft: bool = False,
    can_push_workflows: bool = False,
) -> PROutcome:
    """Push `patch` (against prepared.commit) as branch `branch_name` and open a PR into `base_branch`."""
    commit, skipped, reason = _commit(api, repo, prepared, patch, title, requester, can_push_workflows)
    if commit is None:
        return PROutcome(None, None, None, skipped, reason)
    api.create_ref(repo, f"refs/heads/{branch_name}", commit)
    try:
        pull = api.create_pull(repo, title=title, head=branch_name, base=base_branch, body=body, draft=draft)
    except GitHubError as e:
        # Draft PRs are not available on every plan; GitHub says so with a 422.
        if not (draft and e.status == 422 and "draft" in str(e.data).lower()):
            raise
        log.info("draft pull requests are not supported on %s; opening a regular one", repo)
        pull = api.create_pull(repo, title=title, head=branch_name, base=base_branch, body=body, draft=False)
    return PROutcome(pull.get("html_url"), pull.get("number"), branch_name, skipped, None)
