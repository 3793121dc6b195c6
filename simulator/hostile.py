"""Hostile answers for the fakes: a gzip bomb, an endless stream, a slow drip, a redirect.

A ``Responder`` answers one request in place of the fake's own handler; ``released`` is the
fake's event that ends hanging requests (set when a test takes the fault away), so that a
stream never outlives the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
import functools
from typing import Final
import zlib

from aiohttp import web

type Responder = Callable[[web.Request, asyncio.Event], Awaitable[web.StreamResponse]]

MIB: Final = 1024 * 1024
_CHUNK: Final = 64 * 1024


@functools.cache
def gzip_bomb(inflated: int = 256 * MIB) -> bytes:
    """``inflated`` bytes of ``{"a":"000…`` gzip-compressed (256 MiB: some 260 KB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = b'{"a": "'
    parts = [packer.compress(head)]
    zeros = b"0" * MIB
    left = inflated - len(head)
    while left > 0:
        parts.append(packer.compress(zeros[: min(left, MIB)]))
        left -= MIB
    parts.append(packer.flush())
    return b"".join(parts)


def deeply_nested(depth: int = 100_000) -> bytes:
    """Valid JSON nested ``depth`` lists deep."""
    return b"[" * depth + b"]" * depth


def compressed(body: bytes, encoding: str = "gzip") -> Responder:
    """Answer ``body`` (already compressed) with ``Content-Encoding: encoding``."""

    async def respond(request: web.Request, released: asyncio.Event) -> web.StreamResponse:
        return web.Response(
            body=body,
            content_type="application/json",
            headers={"Content-Encoding": encoding},
        )

    return respond


def endless(chunk: bytes = b" " * _CHUNK) -> Responder:
    """HTTP 200 with a chunked body that never ends (until the client goes away)."""

    async def respond(request: web.Request, released: asyncio.Event) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while not released.is_set():
                await response.write(chunk)
        return response

    return respond


def slow_drip(every: float, data: bytes = b"{") -> Responder:
    """HTTP 200, then one byte of ``data`` (repeated) every ``every`` seconds, never ending."""

    async def respond(request: web.Request, released: asyncio.Event) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while not released.is_set():
                await response.write(data[:1])
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(every):
                        await released.wait()
        return response

    return respond


def redirect(location: str, status: int = 302) -> Responder:
    """Answer with a redirect to ``location``."""

    async def respond(request: web.Request, released: asyncio.Event) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return respond
