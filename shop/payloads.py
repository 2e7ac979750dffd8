"""JSON bodies from outside (webhook deliveries): decoded within bounds, and what PostgreSQL can store.

Both webhook sources read their bodies through `decode_json` once the signature has passed, so a
hostile but correctly signed body (nested a hundred thousand deep, with a number JSON does not have)
is refused the same way for each: NotJSON, answered 400, never a RecursionError and a 500.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Clerk's and Stripe's own objects nest about five deep; the rest is metadata. The bound keeps every
# recursive reader of the stored payload (json's encoder and decoder, the admin page's indented dump)
# far from Python's recursion limit.
MAX_DEPTH = 100
# What PostgreSQL cannot store in text or JSONB: NUL, and lone surrogates (JSON's "\ud800" escape
# decodes to one; it has no UTF-8 form).
UNSTORABLE_TEXT = re.compile(r"[\x00\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# A string, or what is left of an unterminated one: possessive and always matching from a quote, so
# the scan is linear whatever the input (a required closing quote made it quadratic on `"\"\"\"…`).
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


class NotJSON(ValueError):
    """The body is not JSON this shop can read and store; the message says why."""


def _nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Whether the JSON text nests deeper than `limit`, found without parsing (strings skipped)."""
    depth = 0
    for byte in _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in b"[{" else -1
        if depth > limit:
            return True
    return False


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):  # 1e400: JSON has no infinity, and neither has JSONB
        raise ValueError("number out of range")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json accepts NaN and Infinity; PostgreSQL does not


def decode_json(raw: bytes) -> Any:
    """The body's JSON, or NotJSON: malformed, not UTF-8, nested deeper than MAX_DEPTH, or with
    numbers JSON does not have."""
    if _nesting_exceeds(raw, MAX_DEPTH):
        raise NotJSON(f"it nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(raw, parse_float=_finite, parse_constant=_constant)
    except RecursionError as exc:  # the scan above should have refused it first; never a 500
        raise NotJSON("it nests too deep") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, and the two hooks above
        raise NotJSON("it is not valid UTF-8 JSON") from exc


def is_storable(value: Any) -> bool:
    """Whether PostgreSQL can store `value` as it is (`storable(value) == value`), found fast.

    Walking the payload in Python cost 0.2 ms a delivery, a tenth of a webhook's CPU (bench/README.md).
    """
    return storable_json(value) is not None


def storable_json(value: Any) -> str | None:
    """`value` as compact JSON text (UTF-8 ready, not ASCII-escaped), or None if PostgreSQL could not
    store it as it is. One pass of json's C encoder answers both: it writes a NUL as the six
    characters `\\u0000` and a lone surrogate as itself (ensure_ascii=False), so a text without
    either is storable; a text with `\\u0000` in it may only hold those six characters as data (an
    escaped backslash before them), which the walk decides."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if _SURROGATE.search(text):
        return None
    if "\\u0000" in text and storable(value) != value:
        return None
    return text


def storable(value: Any) -> Any:
    """`value` with NUL characters and lone surrogates (in keys and strings) replaced by U+FFFD:
    what PostgreSQL can store of a payload it refused as it came."""
    if isinstance(value, str):
        return UNSTORABLE_TEXT.sub("\ufffd", value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value
