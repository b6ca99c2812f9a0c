"""The anchors a service offers: the verified bundles in its anchors folder, with thumbnails,
kept up to date while the service runs (an anchor job that finishes, or a bundle an operator
copies in, is offered without a restart)."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2

from ..bundle import MANIFEST, Presenter, load_bundle
from ..create.listing import WORK_SUFFIX
from ..errors import NewsanchorError

log = logging.getLogger("newsanchor.serve")
THUMBNAIL_WIDTH = 320
# anchor names travel in URLs and JSON and name folders: keep them plain
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Anchor:
    """A usable bundle. ``created``: the manifest's ISO 8601 time (None in old bundles);
    ``quality``: the manifest's summary of its quality report (``{"met", "not_met", …}``, None
    when the bundle has none)."""

    name: str
    path: Path
    presenter: Presenter
    thumbnail_png: bytes
    created: str | None = None
    quality: dict | None = None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a new anchor (folder, URL, JSON), or None."""
    if not NAME_PATTERN.match(name):
        return "use 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
    if name.lower().endswith(WORK_SUFFIX):  # `anchor list` reads NAME.work as an unfinished anchor's work
        return f"must not end in {WORK_SUFFIX!r}"
    return None


def _thumbnail(bundle) -> bytes:
    """The first template frame as PNG, at most THUMBNAIL_WIDTH wide (a list, not a preview)."""
    frame = next(iter(bundle.template_frames()))
    height, width = frame.shape[:2]
    if width > THUMBNAIL_WIDTH:
        frame = cv2.resize(frame, (THUMBNAIL_WIDTH, round(height * THUMBNAIL_WIDTH / width)), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if not ok:
        raise NewsanchorError("cannot encode the thumbnail")
    return png.tobytes()


def _load(path: Path) -> Anchor | str:
    """The anchor at ``path``, or why it cannot be used (one line)."""
    if not NAME_PATTERN.match(path.name):
        return "folder name must be letters, digits, '.', '_' or '-'"
    try:
        bundle = load_bundle(path)
        return Anchor(path.name, path, bundle.presenter, _thumbnail(bundle), bundle.manifest.get("created"),
                      bundle.quality)
    except NewsanchorError as err:
        return str(err)
    except Exception as err:  # a damaged file the loaders do not word: still one line, still skipped
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


class AnchorCatalog:
    """The anchors of ``folder``, looked at again on every :meth:`current`. A sub-folder whose
    anchor.json appeared or changed is loaded (all checksums verified) and one that went away is
    dropped; usable ones are kept as they were loaded, so a look costs one folder listing. A bad
    bundle is tried again every :attr:`retry_s` (one still being copied in becomes usable) and
    logged once per reason. Safe to share between threads."""

    def __init__(self, folder: Path, *, retry_s: float = 30.0):
        self.folder, self.retry_s = Path(folder), retry_s
        self._lock = threading.Lock()
        self._anchors: dict[str, tuple[int, Anchor]] = {}  # name → (its anchor.json's mtime_ns, anchor)
        self._skipped: dict[str, tuple[int, float, str]] = {}  # name → (mtime_ns, when tried, why)

    def _manifests(self) -> dict[str, int]:
        found = {}
        try:
            entries = sorted(os.scandir(self.folder), key=lambda e: e.name)
        except OSError as err:
            raise NewsanchorError(f"{self.folder}: cannot read the anchors folder ({err.strerror})") from None
        for entry in entries:  # hidden folders (the service's own outputs) are not looked at
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            try:
                found[entry.name] = os.stat(Path(entry.path) / MANIFEST).st_mtime_ns
            except OSError:  # no anchor.json (yet): not a bundle
                continue
        return found

    def current(self) -> dict[str, Anchor]:
        """Every usable anchor now, by folder name (sorted)."""
        with self._lock:
            now = time.monotonic()
            anchors, skipped = {}, {}
            for name, mtime in self._manifests().items():
                if name in self._anchors and self._anchors[name][0] == mtime:
                    anchors[name] = self._anchors[name]
                    continue
                earlier = self._skipped.get(name)
                if earlier is not None and earlier[0] == mtime and now - earlier[1] < self.retry_s:
                    skipped[name] = earlier
                    continue
                loaded = _load(self.folder / name)
                if isinstance(loaded, Anchor):
                    anchors[name] = (mtime, loaded)
                    continue
                if earlier is None or earlier[2] != loaded:
                    log.warning("%s: skipped: %s", name, loaded)
                skipped[name] = (mtime, now, loaded)
            self._anchors, self._skipped = anchors, skipped
            return {name: anchor for name, (_, anchor) in anchors.items()}

    def get(self, name: str) -> Anchor | None:
        return self.current().get(name)


def discover_anchors(folder: Path) -> dict[str, Anchor]:
    """Every sub-folder of ``folder`` with an anchor.json that loads with all checksums right,
    by folder name. Bad ones are skipped with one logged line saying why; hidden folders (the
    service's own outputs) are not looked at."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NewsanchorError(f"{folder}: no such anchors folder")
    return AnchorCatalog(folder).current()
