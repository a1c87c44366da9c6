"""The pipeline's own failure: reaching the place a change comes from or goes to failed for good."""

from __future__ import annotations


class DeliveryError(Exception):
    """A front end's delivery side (GitHub's API, ...) failed for good while resolving the target,
    reading the request's context or delivering the change. The message is one sentence a user can
    read; the run ends with `OutcomeKind.DELIVERY_ERROR`. Front ends subclass it (GitHubError)."""
