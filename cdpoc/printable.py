"""Strings from AWS, instances and users made safe for a terminal: control characters shown, never obeyed.

A log line, a tag, an error message or an S3 key can carry escape sequences (recolour, move the cursor,
retitle or rewrite the terminal, hide text), carriage returns and backspaces (overwrite what was printed) or
bidirectional overrides (show text in another order than it is). Printed as is, a file name uploaded by
anyone on the internet could forge what `cdpoc logs` or `cdpoc status` shows the operator. Each such character
is shown as its Python escape instead (`\\x1b`, `\\r`, `\\u202e`).
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, and the Unicode bidirectional embeddings, overrides and
# isolates (the "Trojan Source" characters, CVE-2021-42574), plus the line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_UNSAFE_OR_NEWLINE = re.compile(_UNSAFE.pattern[:-1] + "\n]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return {0x0A: "\\n", 0x0D: "\\r"}.get(code) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` with every character that steers a terminal escaped; with `one_line`, newlines too."""
    return (_UNSAFE_OR_NEWLINE if one_line else _UNSAFE).sub(_escape, text)
