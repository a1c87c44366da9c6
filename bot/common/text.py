"""Text that can always be written: lone surrogates and undecodable bytes become U+FFFD.

Agent code can print anything (`print("\\ud800")`, raw bytes to stdout), call `FINAL` with any
string, and a task or a payload may carry the same. Every writer of a run (events JSONL, results
JSON, summaries, progress, status text) goes through these so that no text crashes a run.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` with every surrogate code point (never valid in UTF-8) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub(REPLACEMENT, text)
    return text


def decode_bytes(data: bytes) -> str:
    """UTF-8 text from bytes; invalid sequences become U+FFFD."""
    return data.decode("utf-8", "replace")


def clean_obj(obj: Any) -> Any:
    """A JSON-like structure with every string (keys included) passed through `clean_text`."""
    if isinstance(obj, str):
        return clean_text(obj)
    if isinstance(obj, bytes):
        return decode_bytes(obj)
    if isinstance(obj, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_obj(v) for v in obj]
    return obj
