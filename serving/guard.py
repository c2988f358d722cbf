"""What the API and the dashboard refuse before a route sees the request (pure ASGI, so nothing is
read or parsed first):

- a Host header that is not one of the names served (LOANS_SERVE_ALLOWED_HOSTS, with localhost,
  127.0.0.1, ::1 and LOANS_SERVE_HOST): 400, so a page whose name was pointed at this machine (DNS
  rebinding) cannot read or drive it;
- a body over LOANS_SERVE_MAX_BODY_BYTES: 413, from its Content-Length, or as soon as a streamed
  (chunked) body passes the limit;
- a POST whose Content-Type is not JSON: 415;
- with an API key configured (LOANS_SERVE_API_KEY; required when listening beyond loopback): a
  protected route (the API's /predict, /predict/batch; every dashboard page but /health) without
  `X-API-Key: <key>`, `Authorization: Bearer <key>` or HTTP basic auth with the key as password (a
  browser asks for it): 401. The API's /health, /model and docs stay open (they say nothing about an
  applicant).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_TYPES = ("application/json",)
PROTECTED = ("/predict",)  # and everything under it


class TooLarge(Exception):
    pass


class Guard:
    def __init__(
        self,
        app: App,
        max_body_bytes: int,
        api_key: str = "",
        hosts: frozenset[str] = frozenset(),
        protected: tuple[str, ...] = PROTECTED,
        open_paths: tuple[str, ...] = (),
        challenge: str = "Bearer",
    ) -> None:
        self.app, self.max_body_bytes, self.api_key, self.hosts = app, max_body_bytes, api_key, hosts
        self.protected, self.open_paths, self.challenge = protected, open_paths, challenge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if problem := self.refused(scope, headers):
            await reply(send, *problem)
            return
        seen, sent = 0, False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal sent
            sent = sent or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except TooLarge:
            if not sent:
                await reply(send, 413, self.too_large())

    def refused(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, dict[str, str]] | None:
        path, method = scope.get("path", ""), scope.get("method", "GET")
        host = host_name(headers.get("host", ""))
        if self.hosts and host and host not in self.hosts:
            return 400, f"Host {host!r} is not served here: add it to LOANS_SERVE_ALLOWED_HOSTS", {}
        guarded = path.startswith(self.protected) and not path.startswith(self.open_paths)
        if self.api_key and guarded and not self.authorised(headers):
            detail = "missing or wrong API key: send the header X-API-Key"
            return 401, detail, {"WWW-Authenticate": self.challenge}
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return 413, self.too_large(), {}
        if method in ("POST", "PUT", "PATCH"):
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in JSON_TYPES:
                shown = kind or "none"
                return 415, f"Content-Type {shown} is not supported: send application/json", {}
        return None

    def authorised(self, headers: dict[str, str]) -> bool:
        authorization = headers.get("authorization", "")
        given = headers.get("x-api-key") or authorization.removeprefix("Bearer ").strip()
        if authorization.startswith("Basic "):  # user:key; any user name
            try:
                given = base64.b64decode(authorization[6:], validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        return hmac.compare_digest(given.encode(), self.api_key.encode())

    def too_large(self) -> str:
        return f"request body over {self.max_body_bytes:,} bytes (LOANS_SERVE_MAX_BODY_BYTES)"


def host_name(header: str) -> str:
    """The name in a Host header, without its port, lower case: `[::1]:8000` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


async def reply(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    """A JSON `{"detail": ...}` answer with `status` (and extra headers)."""
    headers = headers or {}
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
