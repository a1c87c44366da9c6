"""How a GitHub API call failed: GitHub's own words, and whether another try may help."""

from __future__ import annotations

from typing import Any

from bot.pipeline import DeliveryError


class GitHubError(DeliveryError):
    """A GitHub API call failed for good. The message is one sentence a user can read (a run that
    meets it ends as the pipeline's DELIVERY_ERROR)."""

    def __init__(self, message: str, status: int | None = None, data: Any = None):
        super().__init__(message)
        self.status = status
        self.data = data


def describe(data: Any) -> str:
    """GitHub's own words: `message`, then each of `errors[]` (where a 422 says what was wrong)."""
    if not isinstance(data, dict):
        return "no message"
    parts = [str(data.get("message") or "no message")]
    for item in data.get("errors") or []:
        if isinstance(item, dict):
            text = item.get("message") or " ".join(
                str(item[k]) for k in ("resource", "field", "code") if item.get(k)
            )
        else:
            text = str(item)
        if text and text not in parts:
            parts.append(text)
    return ": ".join(parts[:1]) + (" — " + "; ".join(parts[1:]) if len(parts) > 1 else "")


MISSING = object()


class Failure(Exception):
    """One failed attempt of a call (GitHubAPI.request retries or turns it into a GitHubError)."""

    def __init__(self, status: int | None, headers: dict, data: Any, transport: str | None = None):
        super().__init__(f"{status} {describe(data)}" if status is not None else transport)
        self.status, self.headers, self.data = status, headers, data
        self.summary = str(self)

    @property
    def rate_limited(self) -> bool:
        if self.status == 429:
            return True
        if self.status != 403:
            return False
        message = self.data.get("message", "") if isinstance(self.data, dict) else ""
        return (
            "rate limit" in message.lower()
            or "retry-after" in self.headers
            or (self.headers.get("x-ratelimit-remaining") == "0")
        )

    @property
    def transient(self) -> bool:
        """A server error or a dropped connection: the write may or may not have happened."""
        return self.status is None or self.status >= 500

    def error(self, verb: str, path: str, tries: int) -> GitHubError:
        if self.rate_limited or self.transient:
            return GitHubError(
                f"GitHub kept failing on {verb} {path} ({self.summary}) after {tries} tries; "
                "it may be down or rate limiting this app, so try again later.",
                status=self.status,
                data=self.data,
            )
        return GitHubError(
            f"GitHub answered {verb} {path} with {self.summary}.", status=self.status, data=self.data
        )
