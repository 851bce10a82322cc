"""Pure ASGI middleware every request passes before routing: a body limit that holds for every
framing, and the security headers of every response."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.schemas import ErrorPublic

# JSON and errors: nothing to load, nothing to frame. The report sets its own (``report_policy``);
# the interactive docs (/docs, /redoc) load FastAPI's scripts and keep no policy.
DEFAULT_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"no-referrer"), (b"cross-origin-resource-policy", b"same-origin")]
NONE = "'none'"
STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def report_policy(html: str) -> str:
    """The HTML report's policy: its own inline style blocks (by hash) and data: images, nothing
    else: no scripts, no fetches, no frames, no forms."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()}'"
                      for style in STYLE.findall(html))
    return (f"default-src 'none'; style-src {hashes or NONE}; img-src data:; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = ErrorPublic(detail=detail).model_dump_json().encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 once a request body passes ``max_bytes``: a declared Content-Length over it at once;
    any body (chunked included, whatever Content-Length says) as its bytes arrive. The body is read
    here, up to the limit, before routing: before JSON parsing and before authentication."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = f"request body over {self.max_bytes} bytes"
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit():
            return await _refuse(send, 400, "Content-Length is not a number")
        if int(declared) > self.max_bytes:
            return await _refuse(send, 413, too_big)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _refuse(send, 413, too_big)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


class SecurityHeaders:
    """nosniff, no framing, no referrer on every response; a content security policy unless the
    response brings its own (the report) or is the interactive docs."""

    def __init__(self, app: ASGIApp, docs_paths: tuple[str, ...]):
        self.app, self.docs_paths = app, docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        docs = scope["path"] in self.docs_paths

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = [*message.get("headers", []), *HEADERS]
                if not docs and all(name.lower() != b"content-security-policy" for name, _ in headers):
                    headers.append((b"content-security-policy", DEFAULT_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
