"""The anchors a service offers: the verified bundles in its anchors folder, with thumbnails."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import cv2

from ..bundle import MANIFEST, Presenter, load_bundle
from ..errors import NewsanchorError

log = logging.getLogger("newsanchor.serve")
THUMBNAIL_WIDTH = 320
# anchor names travel in URLs and JSON and name folders: keep them plain
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Anchor:
    name: str
    path: Path
    presenter: Presenter
    thumbnail_png: bytes


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


def discover_anchors(folder: Path) -> dict[str, Anchor]:
    """Every sub-folder of ``folder`` with an anchor.json that loads with all checksums right,
    by folder name. Bad ones are skipped with one logged line saying why; hidden folders (the
    service's own outputs) are not looked at."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NewsanchorError(f"{folder}: no such anchors folder")
    anchors: dict[str, Anchor] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (path / MANIFEST).is_file():
            continue
        if not NAME_PATTERN.match(path.name):
            log.warning("%s: skipped: folder name must be letters, digits, '.', '_' or '-'", path)
            continue
        try:
            bundle = load_bundle(path)
            anchors[path.name] = Anchor(path.name, path, bundle.presenter, _thumbnail(bundle))
        except NewsanchorError as err:
            log.warning("%s: skipped: %s", path.name, err)
        except Exception as err:  # a damaged file the loaders do not word: still one line, still skipped
            log.warning("%s: skipped: %s: %s", path.name, type(err).__name__, str(err).splitlines()[0] if str(err) else "")
    return anchors
