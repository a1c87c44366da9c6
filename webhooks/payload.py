"""A delivery's body as a JSON object, or a one-line reason why not (the endpoint answers 400).

Nothing in a body can raise past this: nesting is bounded (the parser's RecursionError and an
iterative check of MAX_DEPTH, so nothing later recurses into a hostile structure), numbers outside what GitHub sends (64-bit ids, finite
floats) are refused, and lone surrogates in strings (valid JSON escapes, invalid text) become
U+FFFD so that no later writer (SQLite, logs, comments) fails on them.
"""

from __future__ import annotations

import json
from typing import Any

from bot.common.text import clean_text

MAX_DEPTH = 64  # GitHub's payloads nest about 6 deep
MAX_INT = 2**63 - 1

BAD_JSON = "the body is not valid JSON"
BAD_ENCODING = "the body is not valid UTF-8"
TOO_DEEP = f"the JSON nests deeper than {MAX_DEPTH} levels"
BAD_NUMBER = "the JSON holds a number outside the range GitHub sends"
NOT_AN_OBJECT = "the body must be a JSON object"
WRONG_TYPE = "the payload's {field} must be {kind}"
KINDS = {int: "an integer", str: "a string", bool: "true or false"}


class PayloadError(ValueError):
    """A body that is not a payload; str(e) is the reason for the sender."""


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) > MAX_INT:
        raise PayloadError(BAD_NUMBER)
    return value


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise PayloadError(BAD_NUMBER)
    return value


def _constant(name: str) -> float:
    raise PayloadError(BAD_NUMBER)  # NaN, Infinity, -Infinity: not JSON


def _checked(data: Any) -> Any:
    """`data` with lone surrogates in strings (keys too) replaced; PayloadError if it nests deeper
    than MAX_DEPTH. Iterative, so no depth can exhaust the stack."""
    root: list[Any] = [data]
    stack: list[tuple[Any, Any, int]] = [(root, 0, 0)]
    while stack:
        parent, key, depth = stack.pop()
        item = parent[key]
        if isinstance(item, str):
            parent[key] = clean_text(item)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth >= MAX_DEPTH:
            raise PayloadError(TOO_DEEP)
        if isinstance(item, dict):
            for k in [k for k in item if clean_text(k) != k]:
                item[clean_text(k)] = item.pop(k)
        keys = item if isinstance(item, dict) else range(len(item))
        stack.extend((item, k, depth + 1) for k in keys)
    return root[0]


def parse_payload(body: bytes) -> dict[str, Any]:
    """The body as a dict; raises PayloadError with the reason otherwise."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PayloadError(BAD_ENCODING) from None
    try:
        data = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except PayloadError:
        raise
    except RecursionError:  # the C parser stops cleanly at the interpreter's recursion limit
        raise PayloadError(TOO_DEEP) from None
    except ValueError:
        raise PayloadError(BAD_JSON) from None
    if not isinstance(data, dict):
        raise PayloadError(NOT_AN_OBJECT)
    return _checked(data)


def typed(value: Any, kind: type, field: str, *, optional: bool = False) -> Any:
    """`value` if it is a `kind` (None too when optional); else PayloadError naming the field.
    A job's fields go to SQLite and to GitHub: a list where a number belongs is a 400, not a 500."""
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PayloadError(WRONG_TYPE.format(field=field, kind=KINDS.get(kind, kind.__name__)))
    return value
