"""Who may call the service and how much: bearer token, body-size limits, rate limit, headers.

The page and its static files are always open (they hold no data and must load to ask for the
token); everything else needs ``Authorization: Bearer TOKEN`` whenever a token is set, and a
token is always set when the server listens on anything but loopback.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from ..errors import NewsanchorError

TOKEN_ENV = "NEWSANCHOR_TOKEN"
# the page's scripts, styles and media come from the app itself; videos may be blob: URLs when
# they are fetched with the token
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; script-src 'self'; "
            "style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def docs_csp(inline_script_hashes: list[str]) -> str:
    """The /docs page's policy: Swagger UI from the app's own files, its one inline start-up script
    allowed by SHA-256 (base64), and nothing from elsewhere."""
    allowed = " ".join(f"'sha256-{digest}'" for digest in inline_script_hashes)
    return (f"default-src 'self'; img-src 'self' data:; script-src 'self' {allowed}; style-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class BodyTooLarge(Exception):
    """A request body went past its limit while it was being received."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"request body larger than {limit} bytes")


def size_text(size: int) -> str:
    """Bytes for people: 50 MB, 256 KB, 900 bytes."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: reachable only from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_open_path(path: str) -> bool:
    """The page, its static files and the API docs' static files (Swagger UI), reachable without
    a token; the docs page itself and the OpenAPI description stay closed like the API."""
    return path == "/" or path.startswith(("/static/", "/docs/assets/"))


def resolve_token(host: str, explicit: str | None, token_file: Path, *, announce=print) -> str | None:
    """The token the server requires: ``explicit`` (--token or $NEWSANCHOR_TOKEN) if given; on
    loopback without one, None (no authentication); otherwise the one saved in ``token_file``,
    or a new random one saved there (mode 600) and announced once."""
    if explicit:
        if len(explicit) < 16:
            raise NewsanchorError("--token: use at least 16 characters (or leave it out to get a random one)")
        return explicit
    if is_loopback(host):
        return None
    token_file = Path(token_file)
    if token_file.is_file():
        if token_file.stat().st_mode & 0o077:
            os.chmod(token_file, 0o600)  # someone loosened it: a token others can read is no secret
        token = token_file.read_text().strip()
        if token:
            announce(f"newsanchor: using the access token saved in {token_file}")
            return token
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        os.chmod(token_file, 0o600)
    except OSError as err:
        raise NewsanchorError(f"{token_file}: cannot save the access token ({err.strerror})") from None
    announce(f"newsanchor: access token (saved in {token_file}, shown only now): {token}")
    return token


class RateLimiter:
    """At most ``per_minute`` events per key in any 60-second window (a sliding log)."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._events: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def retry_after(self, key: str, now: float | None = None) -> float | None:
        """Record an event for ``key``; None if allowed, else the seconds until one would be."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._events[key]
            while events and now - events[0] >= 60.0:
                events.popleft()
            if len(events) >= self.per_minute:
                return 60.0 - (now - events[0])
            events.append(now)
            if len(self._events) > 10_000:  # forget idle clients so the table cannot grow forever
                for idle in [k for k, v in self._events.items() if not v or now - v[-1] >= 60.0]:
                    del self._events[idle]
            return None


class Guard:
    """ASGI middleware: security headers on every answer, the bearer token on every closed path,
    and the size limit of job submissions, both by Content-Length and while the body streams in
    (a client may send none or lie)."""

    def __init__(self, app, *, token: str | None, max_upload: int, max_json: int):
        self.app, self.token, self.max_upload, self.max_json = app, token, max_upload, max_json

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        headers = Headers(scope=scope)
        send = self._headed(send, path)
        if self.token is not None and not is_open_path(path) and not self._authorized(headers):
            response = JSONResponse({"error": "missing or wrong access token (send Authorization: Bearer TOKEN)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        if scope["method"] == "POST" and path == "/api/jobs":
            multipart = headers.get("content-type", "").lower().startswith("multipart/")
            # the form's other fields and boundaries ride along with the file
            limit = self.max_upload + 64 * 1024 if multipart else self.max_json
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                what = f"audio files up to {size_text(self.max_upload)}" if multipart else \
                    f"JSON bodies up to {size_text(self.max_json)}"
                return await JSONResponse({"error": f"request too large: this service accepts {what}"},
                                          status_code=413)(scope, receive, send)
            receive = self._counted(receive, limit)
        await self.app(scope, receive, send)

    def _authorized(self, headers: Headers) -> bool:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(value.strip().encode(), self.token.encode())

    @staticmethod
    def _counted(receive, limit: int):
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return counted

    @staticmethod
    def _headed(send, path: str):
        extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                 (b"x-frame-options", b"DENY")]
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))  # job states and outputs are private and change
        if path != "/docs":  # the docs page sends its own policy (see docs.py)
            extra.append((b"content-security-policy", PAGE_CSP.encode()))

        async def headed(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return headed
