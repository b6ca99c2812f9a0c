"""What one newsroom service runs with: where things are, who may call it, its limits, and how
it trains the anchors its Anchors page makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import load_yaml
from ..create.plan import DEFAULT_MINUTES, CreatePlan
from ..speech.text import MAX_SCRIPT_CHARS

DB_NAME = ".newsanchor-jobs.sqlite"
OUTPUTS_NAME = ".newsanchor-outputs"
TOKEN_NAME = ".newsanchor-token"
CONFIG_ENV = "NEWSANCHOR_SERVE_CONFIG"  # what `newsanchor serve --config` reads when the option is not given

MAX_TEXT_CHARS = MAX_SCRIPT_CHARS  # about 20 minutes of speech
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_JSON_BYTES = 256 * 1024  # a 20,000-character script in 4-byte UTF-8 with JSON escapes fits
MAX_AUDIO_S = 30 * 60
MAX_TITLE_CHARS = 80
SUBMISSIONS_PER_MINUTE = 30
# an anchor's recordings, all files of one submission together: minutes of 1080p video
MAX_RECORDINGS_BYTES = 4 * 1024 * 1024 * 1024
MAX_RECORDINGS = 20
MAX_RECORDINGS_S = 3 * 60 * 60


@dataclass(frozen=True)
class AnchorTraining:
    """How the service's anchor jobs are trained: ``create_anchor``'s time budget and plan.

    minutes: the budget of one anchor job, from the first check to the quality report (None:
        the plan's fixed steps, as tests use with a tiny plan).
    plan: model sizes, step caps and floors (``newsanchor.create.CreatePlan``).

    Each job keeps the plan it was queued with, so a changed setting never stops a job that
    resumes after a restart.
    """

    minutes: float | None = DEFAULT_MINUTES
    plan: CreatePlan = field(default_factory=CreatePlan)

    def __post_init__(self) -> None:
        if self.minutes is not None and (isinstance(self.minutes, bool) or not isinstance(self.minutes, int | float)
                                         or self.minutes <= 0):
            raise ValueError(f"minutes must be a positive number of minutes or null, not {self.minutes!r}")


@dataclass(frozen=True)
class ServeConfig:
    """The settings ``newsanchor serve --config FILE`` reads from YAML, e.g.::

        anchor_training:
          minutes: 90
          plan: {size: 256, renderer_max_steps: 8000}
    """

    anchor_training: AnchorTraining = field(default_factory=AnchorTraining)


def load_serve_config(path: str | Path | None) -> ServeConfig:
    """The YAML file's settings (defaults for what it leaves out; none given: all defaults).

    Raises:
        NewsanchorError: an unreadable file, YAML that does not parse, an unknown key or a bad value,
            named in one line.
    """
    return load_yaml(ServeConfig, path) if path is not None else ServeConfig()


@dataclass(frozen=True)
class ServeSettings:
    """anchors_dir: folder of anchor bundles (one sub-folder each), also home of the job
    database, the outputs and the token file by default; new anchors are made into it.
    db: SQLite path or URL of the job store (default: ``anchors_dir/.newsanchor-jobs.sqlite``).
    host: the address the server binds; anything but loopback requires ``token``.
    token: the bearer token clients must send (None: no authentication, loopback only).
    allowed_hosts: names (or addresses) clients may reach the service by, beside loopback's and
        ``host``: the ``Host`` a request carries and the ``Origin`` of one that changes jobs must
        be one of them (see ``security.HostPolicy``).
    max_recordings_bytes / max_recordings / max_recordings_s: what one anchor submission may
        upload: bytes of all its files, files, seconds of all its recordings.
    anchor_training: the budget and plan of anchor jobs queued by this service.
    """

    anchors_dir: Path
    db: str | None = None
    host: str = "127.0.0.1"
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_text_chars: int = MAX_TEXT_CHARS
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_audio_s: float = MAX_AUDIO_S
    max_recordings_bytes: int = MAX_RECORDINGS_BYTES
    max_recordings: int = MAX_RECORDINGS
    max_recordings_s: float = MAX_RECORDINGS_S
    submissions_per_minute: int = SUBMISSIONS_PER_MINUTE
    recent_jobs: int = 50
    anchor_training: AnchorTraining = field(default_factory=AnchorTraining)

    @property
    def db_spec(self) -> str:
        return self.db or str(Path(self.anchors_dir) / DB_NAME)

    @property
    def outputs_dir(self) -> Path:
        return Path(self.anchors_dir) / OUTPUTS_NAME

    @property
    def token_file(self) -> Path:
        return Path(self.anchors_dir) / TOKEN_NAME
