"""Input that validates as JSON but cannot be stored or sent: NUL characters (PostgreSQL's
text and jsonb refuse them), numbers that are not finite (JSON has no NaN or Infinity, and
orjson would store them as null), line breaks in one-line mail header fields.

The walks here are for the rare request that needs them: callers first test the raw body
(`may_hold_nul`) or the stored JSON (`may_hold_non_finite`), which costs clean input nothing.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

# A NUL can reach a parsed string only as this escape: JSON forbids raw control characters.
NUL_ESCAPE = b"\\u0000"
NUL_MESSAGE = "must not contain the NUL character (\\u0000)"
NON_FINITE_MESSAGE = "must hold finite numbers only (not NaN, Infinity or beyond a 64-bit float)"
LINE_BREAK_MESSAGE = "must be a single line (no CR or LF)"
# One-line header fields (subject, display names) as a JSON Schema pattern, for the OpenAPI
# only: pydantic-core's regex costs ~0.7 µs a string, a Python `in` a tenth of that.
ONE_LINE = r"^[^\r\n]*$"


def may_hold_nul(raw: bytes) -> bool:
    """Whether a raw JSON body may hold a NUL character once parsed (false: it cannot)."""
    return NUL_ESCAPE in raw


def may_hold_non_finite(stored: bytes) -> bool:
    """Whether a value that orjson dumped as `stored` may have held NaN or an infinity:
    orjson writes them as `null`, so without a `null` it held none."""
    return b"null" in stored


def join(path: str, name: str | int) -> str:
    """`path` and one more step, in the API's field notation (`to[0].email`)."""
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def nul_paths(value: Any, path: str = "") -> list[str]:
    """Paths of the strings (and mapping keys) under `value` that hold a NUL character.

    Pydantic models are walked by field, named by alias as clients spell them."""
    found: list[str] = []
    _walk_nul(value, path, found)
    return found


def _walk_nul(value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            found.append(path or "body")
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            _walk_nul(value.__dict__[name], join(path, info.alias or name), found)
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key):
                found.append(path or "body")
                continue
            _walk_nul(item, join(path, str(key)), found)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk_nul(item, join(path, index), found)


def non_finite_paths(value: Any, path: str) -> list[str]:
    """Paths of the floats under `value` (JSON data: dicts, lists, scalars) that are NaN or
    infinite."""
    found: list[str] = []
    _walk_non_finite(value, path, found)
    return found


def _walk_non_finite(value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            found.append(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk_non_finite(item, join(path, str(key)), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk_non_finite(item, join(path, index), found)


def has_line_break(value: str | None) -> bool:
    """Whether a one-line header value holds CR or LF (header injection)."""
    return value is not None and ("\n" in value or "\r" in value)
