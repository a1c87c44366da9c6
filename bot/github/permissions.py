"""Who may command the bot: the collaborator-permission API must say write, maintain or admin."""

from __future__ import annotations

from .api import GitHubAPI

WRITE_PERMISSIONS = {"admin", "maintain", "write"}

NOT_ALLOWED = (
    "Sorry @{user}, only people with write access to this repository can use `{prefix}` commands. "
    "Ask a maintainer to run it for you."
)


def may_run(api: GitHubAPI, repo: str, user: str) -> bool:
    return api.get_permission(repo, user) in WRITE_PERMISSIONS


def not_allowed(user: str, prefix: str = "/rlm") -> str:
    return NOT_ALLOWED.format(user=user, prefix=prefix)
