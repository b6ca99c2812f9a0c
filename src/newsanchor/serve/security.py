"""Who may call the service and how much: host names, origins, bearer token, body-size limits,
rate limit, headers.

Every request must name the service by one of its own names (``Host``), so that a web page
whose name an attacker points at 127.0.0.1 (DNS rebinding) is refused, and a request that changes
jobs must come from the service's own page (``Origin``), so that another site's form cannot post
to it. The page and its static files need no token (they hold no data and must load to ask for
it); everything else needs ``Authorization: Bearer TOKEN`` whenever a token is set, and a token
is always set when the server listens on anything but loopback.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import secrets
import stat
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from ..errors import NewsanchorError

TOKEN_ENV = "NEWSANCHOR_TOKEN"
# addresses that mean "every interface": the names clients use for such a server are not known
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")
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
    """Bytes for people: 4 GB, 50 MB, 256 KB, 900 bytes."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
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


def host_name(authority: str) -> str | None:
    """The host of a ``Host`` header or URL authority (``name``, ``name:port``, ``[v6]:port``),
    lower case, without brackets, port or a final dot; None when it is not one."""
    value = authority.strip().lower()
    if value.startswith("["):
        name, bracket, port = value[1:].partition("]")
        try:
            name = str(ipaddress.IPv6Address(name))  # one spelling: [0::1] is ::1
        except ValueError:
            return None
        if not bracket:
            return None
    else:
        name, colon, port = value.partition(":")
        port = colon + port
        name = name.removesuffix(".")
        if not _NAME.fullmatch(name):
            return None
    if port and not (port.startswith(":") and port[1:].isdigit() and len(port) <= 6):
        return None
    return name


def allowed_host_name(value: str) -> str:
    """An operator's ``--allowed-host`` (or the bound address): a bare host name or address,
    normalised as :func:`host_name` normalises what requests carry.

    Raises:
        NewsanchorError: a scheme, port, path, or anything else that is not a host.
    """
    bare = value.strip().lower().removeprefix("[").removesuffix("]").removesuffix(".")
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if not _NAME.fullmatch(bare):
        raise NewsanchorError(f"--allowed-host {value[:100]!r}: give a host name or address alone, without scheme, "
                              f"port or path (e.g. news.example.com)")
    return bare


class HostPolicy:
    """The names a service answers to: loopback's (``localhost``, 127.0.0.0/8, ``::1``), the
    address it binds, and the operator's ``allowed_hosts``, each with any port.

    Bound to every interface (0.0.0.0, ::) with no ``allowed_hosts``, the names clients use are
    unknown, so any ``Host`` is taken; such a server always requires a token, which a rebinding
    page does not have. Origins are checked either way."""

    def __init__(self, bind_host: str, allowed_hosts: Iterable[str] = ()):
        names = {"localhost", *(allowed_host_name(name) for name in allowed_hosts)}
        bind = bind_host.strip().strip("[]").lower()
        if bind not in WILDCARD_HOSTS:
            names.add(allowed_host_name(bind))
        self.names = frozenset(names)
        self.checks_host = bind not in WILDCARD_HOSTS or bool(allowed_hosts)

    def knows(self, name: str | None) -> bool:
        return name is not None and (name in self.names or is_loopback(name))

    def host_problem(self, headers: Headers) -> str | None:
        """Why the request's ``Host`` is refused (400), or None."""
        value = headers.get("host")
        if value is None:
            return "Host: missing (HTTP/1.1 requires it)" if self.checks_host else None
        if self.checks_host and not self.knows(host_name(value)):
            return (f"Host {value[:100]!r}: not a name of this service (its operator can add one with "
                    f"--allowed-host NAME)")
        return None

    def origin_problem(self, headers: Headers) -> str | None:
        """Why a request that changes jobs is refused (403) as coming from another site, or None.
        Browsers send ``Origin`` with every such request; where one does not, its
        ``Sec-Fetch-Site`` still tells a cross-site request apart. Clients that are not browsers
        (curl, scripts) send neither and pass."""
        origin = headers.get("origin")
        if origin is None:
            if headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
                return "Sec-Fetch-Site 'cross-site': jobs can be changed only from this service's own page"
            return None
        scheme, separator, authority = origin.strip().partition("://")
        name = host_name(authority) if separator and scheme.lower() in ("http", "https") else None
        same = name is not None and name == host_name(headers.get("host", ""))  # what was checked above
        if not (self.knows(name) or same):
            return f"Origin {origin[:100]!r}: jobs can be changed only from this service's own page"
        return None


def resolve_token(host: str, explicit: str | None, token_file: Path, *, announce=print) -> str | None:
    """The token the server requires: ``explicit`` (--token or $NEWSANCHOR_TOKEN) if given; on
    loopback without one, None (no authentication); otherwise the one saved in ``token_file``,
    or a new random one saved there (mode 600) and announced once. The file is never followed
    through a symbolic link: one at its place (planted to make the server read or overwrite
    another file) is refused.

    Raises:
        NewsanchorError: a short --token, a symbolic link or something else at the token's
            place, or a token file that cannot be read or written.
    """
    if explicit:
        if len(explicit) < 16:
            raise NewsanchorError("--token: use at least 16 characters (or leave it out to get a random one)")
        return explicit
    if is_loopback(host):
        return None
    token_file = Path(token_file)
    try:
        fd = os.open(token_file, os.O_RDWR | os.O_NOFOLLOW)
        created = False
    except FileNotFoundError:  # O_EXCL: made here, never an existing file or a link's target
        fd, created = _create_private(token_file), True
    except OSError as err:
        raise _token_file_error(token_file, err) from None
    try:
        with os.fdopen(fd, "r+") as f:
            if not created:
                mode = os.fstat(f.fileno()).st_mode
                if not stat.S_ISREG(mode):
                    raise NewsanchorError(f"{token_file}: not a regular file; cannot keep the access token there")
                if mode & 0o077:
                    os.fchmod(f.fileno(), 0o600)  # someone loosened it: a token others can read is no secret
                token = f.read().strip()
                if token:
                    announce(f"newsanchor: using the access token saved in {token_file}")
                    return token
            token = secrets.token_urlsafe(32)
            f.seek(0)
            f.truncate()
            f.write(token + "\n")
    except (OSError, UnicodeDecodeError) as err:
        raise NewsanchorError(f"{token_file}: cannot read or save the access token "
                              f"({getattr(err, 'strerror', None) or err})") from None
    announce(f"newsanchor: access token (saved in {token_file}, shown only now): {token}")
    return token


def _create_private(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as err:
        raise _token_file_error(path, err) from None


def _token_file_error(path: Path, err: OSError) -> NewsanchorError:
    if err.errno in (errno.ELOOP, errno.EEXIST) and path.is_symlink():
        return NewsanchorError(f"{path}: is a symbolic link; the access token is kept only in a plain file "
                               f"(remove the link)")
    return NewsanchorError(f"{path}: cannot keep the access token there ({err.strerror})")


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
    """ASGI middleware: security headers on every answer; the host policy (``Host`` on every
    request, ``Origin`` on those that change jobs); the bearer token on every closed path; and the
    size limit of submissions, both by Content-Length and while the body streams in (a client may
    send none or lie). ``uploads``: the paths that take files, each with its limit of a multipart
    body and what that limit covers, in words; every other POST is JSON, up to ``max_json``."""

    def __init__(self, app, *, token: str | None, uploads: dict[str, tuple[int, str]], max_json: int,
                 hosts: HostPolicy):
        self.app, self.token, self.uploads, self.max_json = app, token, uploads, max_json
        self.hosts = hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        headers = Headers(scope=scope)
        send = self._headed(send, path)
        refused = self.hosts.host_problem(headers)
        if refused is not None:
            return await JSONResponse({"error": refused}, status_code=400)(scope, receive, send)
        refused = self.hosts.origin_problem(headers) if scope["method"] in STATE_CHANGING_METHODS else None
        if refused is not None:
            return await JSONResponse({"error": refused}, status_code=403)(scope, receive, send)
        if self.token is not None and not is_open_path(path) and not self._authorized(headers, self.token):
            response = JSONResponse({"error": "missing or wrong access token (send Authorization: Bearer TOKEN)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        if scope["method"] == "POST" and path in self.uploads:
            multipart = headers.get("content-type", "").lower().startswith("multipart/")
            upload_limit, uploaded = self.uploads[path]
            # the form's other fields and boundaries ride along with the files
            limit = upload_limit + 64 * 1024 if multipart else self.max_json
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                what = f"{uploaded} up to {size_text(upload_limit)}" if multipart else \
                    f"JSON bodies up to {size_text(self.max_json)}"
                return await JSONResponse({"error": f"request too large: this service accepts {what}"},
                                          status_code=413)(scope, receive, send)
            receive = self._counted(receive, limit)
        await self.app(scope, receive, send)

    @staticmethod
    def _authorized(headers: Headers, token: str) -> bool:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(value.strip().encode(), token.encode())

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
