"""Reading answers from devices and clouds that may be broken or hostile.

Both clients read a body through ``read_body`` (streamed, capped on the wire and after
decompression, never inflated past the cap) and parse it with ``parse_json`` (typed
``ValueError`` for anything that is not JSON, deep nesting included; off the event loop above
``PARSE_OFF_LOOP_ABOVE``). ``loggable`` makes any text a vendor sent fit for a log line, an
exception or a flow placeholder, and ``diagnostic_copy`` makes a kept payload fit for diagnostics.
No Home Assistant imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import json
import math
from typing import Any, Final
import zlib

import aiohttp

_loads: Callable[[bytes], Any]
try:
    import orjson
except ImportError:  # pragma: no cover - Home Assistant ships orjson
    _loads = json.loads
else:
    _loads = orjson.loads

# Sent with every request: the encodings ``read_body`` decodes itself (aiohttp would inflate a
# body without a bound, and would also offer brotli when it is installed).
ACCEPT_ENCODING: Final = {"Accept-Encoding": "gzip, deflate"}
# A body this small parses in well under a millisecond; a larger one is parsed in the executor
# (1 MB takes some 5-20 ms, and a hostile one up to the cap should never block the loop).
PARSE_OFF_LOOP_ABOVE: Final = 64 * 1024
VENDOR_TEXT_LENGTH: Final = 200

# gzip or zlib header, detected (the "deflate" coding is zlib-wrapped, RFC 9110 8.4.1.2)
_GZIP_OR_ZLIB: Final = 32 + zlib.MAX_WBITS
_ENCODINGS: Final = frozenset({"gzip", "x-gzip", "deflate"})
# diagnostic_copy: deepest level and most items per list or object kept
_DIAGNOSTIC_DEPTH: Final = 6
_DIAGNOSTIC_ITEMS: Final = 100
_INT64: Final = 2**63


class BodyError(ValueError):
    """The body is larger than allowed or its encoding cannot be read."""


async def read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of ``response`` (requested with ``auto_decompress=False``), decoded.

    At most ``limit`` bytes are read from the wire, and at most ``limit`` bytes come out of the
    decompression: a gzip bomb stops at the cap, an endless stream after ``limit`` bytes. The
    caller's timeout bounds a slow one. Raises ``BodyError``.
    """
    if response.content_length is not None and response.content_length > limit:
        raise BodyError(
            f"the answer is larger than {limit} bytes ({response.content_length} announced)"
        )
    coding = response.headers.get(aiohttp.hdrs.CONTENT_ENCODING, "").strip().lower()
    if coding in ("", "identity"):
        decoder = None
    elif coding in _ENCODINGS:
        decoder = zlib.decompressobj(_GZIP_OR_ZLIB)
    else:
        raise BodyError(f"unsupported content encoding {loggable(coding, 40)}")
    parts: list[bytes] = []
    wire = size = 0
    while chunk := await response.content.readany():
        wire += len(chunk)
        if wire > limit:
            raise BodyError(f"the answer is larger than {limit} bytes")
        if decoder is not None:
            try:
                # never more than one byte past the limit (0 would mean "no limit")
                chunk = decoder.decompress(chunk, limit - size + 1)
            except zlib.error as err:
                raise BodyError(f"the {coding} body is broken: {err}") from None
            if decoder.unused_data:
                raise BodyError(f"data after the end of the {coding} body")
        size += len(chunk)
        if size > limit:
            raise BodyError(f"the answer is larger than {limit} bytes once decompressed")
        parts.append(chunk)
    if decoder is not None and not decoder.eof:
        raise BodyError(f"the {coding} body is cut off")
    return b"".join(parts)


def decode_json(body: bytes) -> Any:
    """Parse JSON; raises ``ValueError`` for anything that is not (also for absurd nesting)."""
    try:
        return _loads(body)
    except ValueError:
        pass
    # orjson rejects the NaN/Infinity literals that json accepts (the value parsers drop them)
    try:
        return json.loads(body)
    except RecursionError as err:
        raise ValueError("JSON nested too deeply") from err


async def parse_json(body: bytes) -> Any:
    """``decode_json``, in the executor for a body above ``PARSE_OFF_LOOP_ABOVE`` bytes."""
    if len(body) <= PARSE_OFF_LOOP_ABOVE:
        return decode_json(body)
    return await asyncio.get_running_loop().run_in_executor(None, decode_json, body)


def loggable(text: object, limit: int = VENDOR_TEXT_LENGTH) -> str:
    r"""``text`` shortened to ``limit`` characters, every unprintable character escaped.

    Line breaks, control and format characters (a forged log line, a bidi override) and lone
    surrogates are written as ``\xNN``/``\uNNNN`` escapes; a cut is marked with "…".
    """
    text = str(text)
    escaped = "".join(char if char.isprintable() else _escape(char) for char in text[: limit + 1])
    return escaped if len(escaped) <= limit and len(text) <= limit else f"{escaped[:limit]}…"


def _escape(char: str) -> str:
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def diagnostic_copy(value: object, depth: int = _DIAGNOSTIC_DEPTH) -> object:
    """A copy of a parsed payload that any JSON encoder takes and that stays small.

    Strings are shortened and escaped (``loggable``), numbers outside 64 bits or not finite
    become their text, and only ``_DIAGNOSTIC_ITEMS`` items of a list or object and
    ``_DIAGNOSTIC_DEPTH`` levels are kept ("…" marks what was left out).
    """
    if isinstance(value, str):
        return loggable(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else loggable(value, 40)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth <= 0:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())
        copy = {
            loggable(key, 60): diagnostic_copy(item, depth - 1)
            for key, item in items[:_DIAGNOSTIC_ITEMS]
        }
        if len(items) > _DIAGNOSTIC_ITEMS:
            copy["…"] = f"{len(items) - _DIAGNOSTIC_ITEMS} more"
        return copy
    if isinstance(value, list):
        kept: list[object] = [
            diagnostic_copy(item, depth - 1) for item in value[:_DIAGNOSTIC_ITEMS]
        ]
        if len(value) > _DIAGNOSTIC_ITEMS:
            kept.append(f"… {len(value) - _DIAGNOSTIC_ITEMS} more")
        return kept
    return loggable(type(value).__name__, 40)
