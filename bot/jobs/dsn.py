"""Database targets as they may be shown: a PostgreSQL URL's password never appears, whatever its form.

A URL is shown only when it is well formed (one `@` ending the user info, a host and port after it,
nothing that looks like user info elsewhere), with the password and any `password=` parameter
masked. A malformed one (a typo such as a missing `@`, which would make the password look like a
host) is not shown at all, and neither is the driver's error about it: it could quote any part.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
SCHEMES = ("postgresql://", "postgres://")
MALFORMED = "{scheme}(hidden: not a well-formed URL)"
MALFORMED_REASON = (
    "the URL is not well formed (expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE, with any "
    "@ : / ? # in the password percent-encoded)"
)
_PASSWORD_PARAM = re.compile(r"((?:^|[?&\s])(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", re.I)
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\[\]:@]*)(:\d*)?$")


def _parts(dsn: str) -> tuple[str, str, str, str] | None:
    """(scheme, user info, host list, the rest) of a well-formed URL, else None."""
    scheme = next((s for s in SCHEMES if dsn.startswith(s)), None)
    if scheme is None:
        return None
    rest = dsn[len(scheme) :]
    end = min([i for i in (rest.find(c) for c in "/?#") if i >= 0], default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    if "@" in tail or netloc.count("@") > 1:
        return None
    userinfo, _, hosts = netloc.rpartition("@")
    if not all(_HOST.match(h) for h in hosts.split(",")):
        return None  # e.g. `user:PASS127.0.0.1:5432` without its `@`: the password reads as a port
    return scheme, userinfo, hosts, tail


def well_formed(dsn: str) -> bool:
    return _parts(dsn) is not None


def safe_dsn(dsn: str) -> str:
    """The URL with its password (in the user info or a `password=` parameter) masked; a
    malformed URL is hidden entirely."""
    parts = _parts(dsn)
    if parts is None:
        scheme = next((s for s in SCHEMES if dsn.startswith(s)), "")
        return MALFORMED.format(scheme=scheme)
    scheme, userinfo, hosts, tail = parts
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{MASK}@" if colon else (f"{user}@" if userinfo else "")
    return scheme + shown + hosts + _PASSWORD_PARAM.sub(rf"\g<1>{MASK}", tail)


def mask_password_params(text: str) -> str:
    """`password=...` (a key/value connection string, or a URL's query) masked."""
    return _PASSWORD_PARAM.sub(rf"\g<1>{MASK}", text)


def dsn_secrets(dsn: str) -> list[str]:
    """Every string of `dsn` that may be (part of) its password, as written and decoded."""
    found: list[str] = []
    scheme = next((s for s in SCHEMES if dsn.startswith(s)), None)
    if scheme is not None:
        rest = dsn[len(scheme) :]
        userinfo = rest.rpartition("@")[0] if "@" in rest else rest.split("/", 1)[0]
        password = userinfo.partition(":")[2]
        if password:
            found += [password, *re.split(r"[@:/?#]", password)]
    for m in _PASSWORD_PARAM.finditer(dsn):
        found.append(m.group(2).strip("'"))
    values = {v for v in found if v} | {unquote(v) for v in found if v}
    return sorted(values, key=len, reverse=True)


def redact_reason(dsn: str, reason: str) -> str:
    """A driver's error about `dsn`, safe to show: for a malformed URL only what is wrong with it."""
    if any(dsn.startswith(s) for s in SCHEMES) and not well_formed(dsn):
        return MALFORMED_REASON
    for secret in dsn_secrets(dsn):
        reason = reason.replace(secret, MASK)
    return mask_password_params(reason)
