"""File names as the operating system gives them: stored losslessly, shown safely.

A file name on Linux is bytes. Python hands over a name that is not valid UTF-8 with each bad
byte as a lone surrogate (PEP 383, U+DC80..U+DCFF), which no database text column accepts and no
terminal can print. The catalog stores such a name with each bad byte as `\\xNN` and every
backslash doubled: a reversible form in which a folder's stored name stays a prefix of its
files' stored names. On a terminal, names are shown with those escapes plus escapes for control
characters, so a file name can neither fake a line of output nor send the terminal commands.

In JSON (every answer of the service, `--json`, `audit export`, the report) every text goes through
`for_json`: a text that is valid UTF-8 and holds nothing `from_stored` would read as an escape is
written as it is; any other in the stored form. So every answer is valid UTF-8 JSON that any
parser takes, ordinary names read as they are, and `from_stored` gives back exactly the name
(`os.fsencode(from_stored(text))`: the file's bytes) whatever it was.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import FacefindError

_BAD_BYTE = re.compile("[\udc80-\udcff]")
_STORED_ESCAPE = re.compile(r"\\(\\|x[89a-f][0-9a-f])")
_OTHER_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def undecodable(text: str) -> bool:
    """Whether `text` came from bytes that are not UTF-8 (fine in a file name, not in a name or purpose)."""
    return _BAD_BYTE.search(text) is not None or _OTHER_SURROGATE.search(text) is not None


def require_text(text: str, what: str) -> str:
    if undecodable(text):
        raise FacefindError(f"{what} '{shown(text)}' is not valid UTF-8 text; give it in UTF-8")
    return text


def to_stored(name: str) -> str:
    """`name` as valid UTF-8 text that `from_stored` turns back into exactly `name`."""
    if "\\" not in name and not _BAD_BYTE.search(name) and not _OTHER_SURROGATE.search(name):
        return name
    name = _OTHER_SURROGATE.sub("\ufffd", name)  # never from a file name; nothing to keep
    return _BAD_BYTE.sub(lambda m: f"\\x{ord(m[0]) - 0xDC00:02x}", name.replace("\\", "\\\\"))


def from_stored(text: str) -> str:
    return _STORED_ESCAPE.sub(lambda m: "\\" if m[1] == "\\" else chr(0xDC00 + int(m[1][1:], 16)), text)


def shown(text: str) -> str:
    """`text` (a file name, or a message naming one) safe to print on one terminal line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if c in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[c]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_json_surrogates(text: str) -> str:
    """JSON text with any lone surrogate written as a `\\uXXXX` escape, so it can be encoded
    as UTF-8; json.loads gives the same string back."""
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m[0]):04x}", text)


def json_text(text: str) -> str:
    """`text` as JSON may carry it (valid UTF-8, no lone surrogates) and a person can read it:
    unchanged unless it came from bytes that are not UTF-8 or holds `\\\\` or `\\xNN` (NN 80..ff),
    else its stored form. `from_stored(json_text(t)) == t` for every file name."""
    if not undecodable(text) and not _STORED_ESCAPE.search(text):
        return text
    return to_stored(text)


def for_json(value: Any) -> Any:
    """`value` (what `model_dump(mode="json")` or `json.loads` gives) with every text, keys too,
    in its `json_text` form: the one way facefind writes text into JSON."""
    if isinstance(value, str):
        return json_text(value)
    if isinstance(value, dict):
        return {json_text(k) if isinstance(k, str) else k: for_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [for_json(v) for v in value]
    return value
