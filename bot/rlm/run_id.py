"""Run ids: `YYYYmmdd-HHMMSS-xxxxxx` (UTC), sortable by start time. Light: no engine import."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
