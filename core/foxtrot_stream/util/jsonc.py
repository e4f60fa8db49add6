"""Read JSON with `//` and `/* */` comments and trailing commas, keeping line/column positions.

Users paste the guide's example, which has comments. Comments and trailing commas are blanked
with spaces (newlines kept), so a `json` error's line and column still point into the file.
"""

from __future__ import annotations

import re


class JsoncError(ValueError):
    def __init__(self, msg: str, line: int, column: int) -> None:
        super().__init__(f"{msg} (line {line}, column {column})")
        self.msg = msg
        self.line = line
        self.column = column


def _blank(chars: list[str], start: int, end: int) -> None:
    for i in range(start, end):
        if chars[i] != "\n":
            chars[i] = " "


def strip_comments(text: str) -> str:
    """Blank comments and trailing commas; everything else keeps its position."""
    chars = list(text)
    n = len(chars)
    i = 0
    in_string = False
    last_comma: int | None = None  # position of a comma not yet followed by a value
    while i < n:
        c = chars[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
            continue
        if c == '"':
            in_string = True
            last_comma = None
        elif c == "/" and i + 1 < n and chars[i + 1] == "/":
            end = text.find("\n", i)
            end = n if end == -1 else end
            _blank(chars, i, end)
            i = end
            continue
        elif c == "/" and i + 1 < n and chars[i + 1] == "*":
            end = text.find("*/", i + 2)
            if end == -1:
                line, col = position(text, i)
                raise JsoncError("unterminated /* comment", line, col)
            _blank(chars, i, end + 2)
            i = end + 2
            continue
        elif c == ",":
            last_comma = i
        elif c in "}]":
            if last_comma is not None:
                chars[last_comma] = " "
            last_comma = None
        elif not c.isspace():
            last_comma = None
        i += 1
    return "".join(chars)


def position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of `index` in `text`."""
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def key_lines(stripped: str) -> dict[str, int]:
    """Line of each object key in `stripped` (the first occurrence wins)."""
    lines: dict[str, int] = {}
    for m in _KEY.finditer(stripped):
        lines.setdefault(m.group(1), stripped.count("\n", 0, m.start()) + 1)
    return lines


_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')
