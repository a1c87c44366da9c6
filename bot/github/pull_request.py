"""A patch becomes a pull request through the Git Data API: blobs, tree, commit, ref, pull.

No clone is pushed: the new contents of each changed file come from applying the patch to the
base commit in the host's cache (binary-safe), and GitHub builds the tree on the base tree, so
deletions and file modes survive exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.rlm import FileChange, PreparedRepo, changed_files, git

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
    branch: str | None  # the pushed branch holding the change (None: nothing pushed, or taken away)
    skipped_workflow_files: list[str] = field(default_factory=list)
    reason: str | None = None  # why there is no PR, when url is None and nothing went wrong
    error: str | None = None  # GitHub's own reason, when it refused the pull request


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


def _commit(
    api: GitHubAPI,
    repo: str,
    prepared: PreparedRepo,
    patch: str,
    title: str,
    requester: str,
    can_push_workflows: bool,
) -> tuple[str | None, str, list[str], str | None]:
    """A commit of `patch` whose parent is prepared.commit: (sha or None, its tree, workflow files left
    out, why there is no commit)."""
    changes = changed_files(prepared.cache, prepared.commit, patch)
    skipped = [] if can_push_workflows else [c.path for c in changes if c.path.startswith(WORKFLOWS_DIR)]
    changes = [c for c in changes if c.path not in skipped]
    if not changes:
        return None, "", skipped, REASON_ONLY_WORKFLOWS if skipped else REASON_NO_CHANGES
    entries = []
    for change in changes:
        sha = None if change.deleted else api.create_blob(repo, change.content or b"")
        entries.append(_tree_entry(change, sha))
    base_tree = (
        git("rev-parse", f"{prepared.commit}^{{tree}}", git_dir=prepared.cache).stdout.decode().strip()
    )
    tree = api.create_tree(repo, base_tree, entries)
    return (
        api.create_commit(repo, commit_message(title, requester), tree, [prepared.commit]),
        tree,
        skipped,
        None,
    )


def created_by_bot(pull: dict, repo: str) -> bool:
    """A same-repository PR whose head branch this bot made (`rlm/…`, opened by a bot account)."""
    head = pull.get("head") or {}
    same_repo = ((head.get("repo") or {}).get("full_name") or "").lower() == repo.lower()
    by_bot = (pull.get("user") or {}).get("type") == "Bot"
    return same_repo and by_bot and str(head.get("ref") or "").startswith(BOT_BRANCH_PREFIX)


def push_commit(
    api: GitHubAPI,
    repo: str,
    *,
    prepared: PreparedRepo,
    patch: str,
    branch: str,
    title: str,
    requester: str,
    can_push_workflows: bool = False,
) -> PushOutcome:
    """One commit on top of `branch`, whose head is prepared.commit (where the agents worked).
    Fast-forward only: if the branch moved meanwhile, GitHub refuses and GitHubError (422) is raised."""
    commit, _, skipped, reason = _commit(api, repo, prepared, patch, title, requester, can_push_workflows)
    if commit is not None:
        api.update_ref(repo, f"heads/{branch}", commit)
    return PushOutcome(commit, branch, skipped, reason)


def push_branch(api: GitHubAPI, repo: str, branch_name: str, commit: str, *, tree: str, parent: str) -> str:
    """Create `branch_name` at `commit`, idempotently: a branch that already holds the same change
    (same tree on the same parent: a resumed run, a retried request) is reused; a name taken by
    something else gets a suffix. Returns the branch holding the change."""
    for attempt in range(MAX_BRANCH_NAMES):
        name = branch_name if attempt == 0 else f"{branch_name}-{attempt + 1}"
        existing = api.get_ref_sha(repo, f"heads/{name}")
        if existing is None:
            try:
                api.create_ref(repo, f"refs/heads/{name}", commit)
                return name
            except GitHubError as e:
                if e.status != 422:
                    raise
                existing = api.get_ref_sha(repo, f"heads/{name}")  # created meanwhile (a retried write)
                if existing is None:
                    raise
        if existing == commit or api.same_change(repo, existing, tree=tree, parent=parent):
            log.info("branch %s already holds this change; reusing it", name)
            return name
    raise GitHubError(
        f"the branches {branch_name} to {branch_name}-{MAX_BRANCH_NAMES} are all taken on {repo}."
    )


MAX_BRANCH_NAMES = 5


def open_pull_request(
    api: GitHubAPI,
    repo: str,
    *,
    prepared: PreparedRepo,
    patch: str,
    base_branch: str,
    title: str,
    body: str | Callable[[list[str]], str],
    requester: str,
    branch_name: str,
    draft: bool = False,
    can_push_workflows: bool = False,
    on_pushed: Callable[[str], None] | None = None,
    keep_branch: bool = True,
) -> PROutcome:
    """Push `patch` (against prepared.commit) as branch `branch_name` and open a PR into `base_branch`.
    `body` may be a function of the skipped workflow files. An open PR from the branch is reused.
    GitHub refusing the PR is an outcome (`error`), not an exception; with `keep_branch` False the
    branch is then deleted again."""
    commit, tree, skipped, reason = _commit(api, repo, prepared, patch, title, requester, can_push_workflows)
    if commit is None:
        return PROutcome(None, None, None, skipped, reason)
    branch = push_branch(api, repo, branch_name, commit, tree=tree, parent=prepared.commit)
    if on_pushed is not None:
        on_pushed(branch)
    text = body(skipped) if callable(body) else body
    try:
        pull = api.find_open_pull(repo, branch) or _create_pull(
            api, repo, title, branch, base_branch, text, draft
        )
    except GitHubError as e:
        log.warning("the pull request from %s was refused: %s", branch, e)
        if not keep_branch and api.delete_ref(repo, f"heads/{branch}"):
            return PROutcome(None, None, None, skipped, error=str(e))
        return PROutcome(None, None, branch, skipped, error=str(e))
    return PROutcome(pull.get("html_url"), pull.get("number"), branch, skipped, None)


def _create_pull(
    api: GitHubAPI, repo: str, title: str, branch: str, base: str, body: str, draft: bool
) -> dict:
    try:
        return api.create_pull(repo, title=title, head=branch, base=base, body=body, draft=draft)
    except GitHubError as e:
        # Draft PRs are not available on every plan; GitHub says so with a 422.
        if not (draft and e.status == 422 and "draft" in str(e.data).lower()):
            raise
        log.info("draft pull requests are not supported on %s; opening a regular one", repo)
        return api.create_pull(repo, title=title, head=branch, base=base, body=body, draft=False)
