"""Who may use the dashboard, and the headers every answer carries.

Two optional schemes, either one admits a request:

- a token (``GRAFLOW_DASHBOARD_TOKEN``): ``Authorization: Bearer <token>``, or the
  ``graflow_token`` cookie that opening any page with ``?token=<token>`` sets (HttpOnly,
  SameSite=Strict) before redirecting to the same page without it;
- HTTP basic auth (``GRAFLOW_DASHBOARD_USER`` and ``GRAFLOW_DASHBOARD_PASSWORD``): the
  browser asks for them.

Actions (POST) also need a same-origin JSON request: a cross-site form cannot post JSON
without a preflight, and a request whose ``Origin`` is another site is refused, so a page
elsewhere cannot make a logged-in browser cancel runs.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "graflow_token"

#: Every answer: no framing, no sniffing, no referrer, scripts and styles from this origin only.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]  # fmt: skip


@dataclass(frozen=True)
class AuthConfig:
    token: str = ""
    user: str = ""
    password: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.token or (self.user and self.password))

    @property
    def basic(self) -> bool:
        return bool(self.user and self.password)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class AuthMiddleware:
    """Checks credentials and the origin of actions; adds ``SECURITY_HEADERS``."""

    def __init__(self, app: ASGIApp, config: AuthConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        if scope["method"] not in ("GET", "HEAD") and not _same_origin(headers):
            await _reply(secured, 403, "cross-origin request refused")
            return
        if scope["path"] == "/healthz" or not self.config.enabled:
            await self.app(scope, receive, secured)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        offered = query.get("token")
        if offered is not None and self.config.token and _same(offered, self.config.token):
            rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
            location = scope["path"] + (f"?{rest}" if rest else "")
            cookie = f"{COOKIE}={self.config.token}; Path=/; HttpOnly; SameSite=Strict"
            await _reply(secured, 303, "", [(b"location", location.encode()), (b"set-cookie", cookie.encode())])
            return
        if self._admits(headers):
            await self.app(scope, receive, secured)
            return
        extra = [(b"www-authenticate", b'Basic realm="graflow dashboard", charset="UTF-8"')] if self.config.basic else []
        hint = "open the dashboard with ?token=<GRAFLOW_DASHBOARD_TOKEN>" if self.config.token else "log in"
        await _reply(secured, 401, f"authentication required: {hint}", extra)

    def _admits(self, headers: dict[str, str]) -> bool:
        token = self.config.token
        authorization = headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        if token and scheme.lower() == "bearer" and _same(value.strip(), token):
            return True
        if token and "cookie" in headers:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(headers["cookie"])
            except Exception:  # a malformed Cookie header admits nothing
                jar = SimpleCookie()
            if COOKIE in jar and _same(jar[COOKIE].value, token):
                return True
        if self.config.basic and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return _same(user, self.config.user) & _same(password, self.config.password)
        return False


def _same_origin(headers: dict[str, str]) -> bool:
    """An action must be JSON, and from this origin when the browser says where from."""
    if not headers.get("content-type", "").startswith("application/json"):
        return False
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site request (curl, the tests' clients)
    host = headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def _reply(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": text}).encode() if text else b""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


__all__ = ["COOKIE", "AuthConfig", "AuthMiddleware"]
