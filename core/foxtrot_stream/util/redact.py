"""`redact`: URLs as they may be shown (logs, warnings, status, stderr), without credentials.

A URL's userinfo (`wss://user:secret@host`) becomes `***@`, and the value of a query parameter
whose name suggests a secret (`token`, `key`, `secret`, `signature`, `password`, …) becomes
`***`. Works on a bare URL or on free text that contains URLs (an exception message).
"""

from __future__ import annotations

import re

__all__ = ["redact"]

#: scheme://authority-and-the-rest, up to whitespace or a quote/bracket that ends it in text
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s'\"<>]+)")
_SECRET_NAME = re.compile(
    r"(?i)(token|secret|passw|pwd|key|signature|^sig$|auth|credential|session)"
)
MASK = "***"


def _redact_one(scheme: str, rest: str) -> str:
    # userinfo is what precedes the last @ before the query: a password written with an
    # unescaped / would end the authority early, so a path's @ is masked too (safe side)
    end = len(rest)
    for stop in "?#":
        i = rest.find(stop)
        if i != -1:
            end = min(end, i)
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        authority = MASK + "@" + authority.rpartition("@")[2]
    query_at = tail.find("?")
    if query_at != -1:
        path, query = tail[: query_at + 1], tail[query_at + 1 :]
        fragment = ""
        if "#" in query:
            query, hash_, frag = query.partition("#")
            fragment = hash_ + frag
        params = []
        for param in query.split("&"):
            name, eq, value = param.partition("=")
            if eq and value and _SECRET_NAME.search(name):
                value = MASK
            params.append(name + eq + value)
        tail = path + "&".join(params) + fragment
    return scheme + authority + tail


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it masked (see the module docstring)."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: _redact_one(m.group(1), m.group(2)), text)
