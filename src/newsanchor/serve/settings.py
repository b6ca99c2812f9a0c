"""What one newsroom service runs with: where things are, who may call it, and its limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..speech.text import MAX_SCRIPT_CHARS

DB_NAME = ".newsanchor-jobs.sqlite"
OUTPUTS_NAME = ".newsanchor-outputs"
TOKEN_NAME = ".newsanchor-token"

MAX_TEXT_CHARS = MAX_SCRIPT_CHARS  # about 20 minutes of speech
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_JSON_BYTES = 256 * 1024  # a 20,000-character script in 4-byte UTF-8 with JSON escapes fits
MAX_AUDIO_S = 30 * 60
MAX_TITLE_CHARS = 80
SUBMISSIONS_PER_MINUTE = 30


@dataclass(frozen=True)
class ServeSettings:
    """anchors_dir: folder of anchor bundles (one sub-folder each), also home of the job
    database, the outputs and the token file by default.
    db: SQLite path or URL of the job store (default: ``anchors_dir/.newsanchor-jobs.sqlite``).
    host: the address the server binds; anything but loopback requires ``token``.
    token: the bearer token clients must send (None: no authentication, loopback only).
    allowed_hosts: names (or addresses) clients may reach the service by, beside loopback's and
        ``host``: the ``Host`` a request carries and the ``Origin`` of one that changes jobs must
        be one of them (see ``security.HostPolicy``).
    """

    anchors_dir: Path
    db: str | None = None
    host: str = "127.0.0.1"
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_text_chars: int = MAX_TEXT_CHARS
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_audio_s: float = MAX_AUDIO_S
    submissions_per_minute: int = SUBMISSIONS_PER_MINUTE
    recent_jobs: int = 50

    @property
    def db_spec(self) -> str:
        return self.db or str(Path(self.anchors_dir) / DB_NAME)

    @property
    def outputs_dir(self) -> Path:
        return Path(self.anchors_dir) / OUTPUTS_NAME

    @property
    def token_file(self) -> Path:
        return Path(self.anchors_dir) / TOKEN_NAME
