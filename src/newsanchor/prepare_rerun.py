"""``prepare``'s output folder: whether it may be written, and, when it already holds a dataset,
what is there, which clip each input becomes and what happens to the clips that are not the inputs'.

Without ``--replace`` nothing already in the dataset is removed: the inputs' clips are added to
the earlier ones (an input whose clip is there already is reused, or prepared again in its place
when its file or the settings changed) and the dataset-wide parts are refitted over them all. An
earlier clip that cannot join them as it is (other settings, damaged) stops the run before any
work, naming it. With ``--replace`` the dataset becomes the inputs' clips alone, and each earlier
clip removed is reported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import PrepareConfig
from .dataset import CLIP_ARRAYS, CLIP_CROPS, CLIP_EDGES, CLIP_INFO, CLIPS_DIR, FORMAT, FORMAT_VERSION, MANIFEST
from .errors import NewsanchorError
from .files import check_output_path, sha256_file

if TYPE_CHECKING:
    from .prepare import ClipSource


def check_output_dir(out: Path) -> bool:
    """True if ``out`` must be created; refuses a folder that is not a dataset of ours, or one
    that cannot be written (checked before any work)."""
    check_output_path(out, folder=True)
    if not out.exists():
        return True
    try:
        entries = {p.name for p in out.iterdir()}
    except OSError as err:
        raise NewsanchorError(f"{out}: cannot read the folder ({err.strerror})") from None
    if entries and not entries & {MANIFEST, CLIPS_DIR}:
        raise NewsanchorError(f"{out}: exists, is not empty and is not a newsanchor dataset; choose another --out")
    if MANIFEST in entries:
        try:
            manifest = json.loads((out / MANIFEST).read_text())
        except (OSError, ValueError):
            return False  # damaged: rewritten at the end of this run
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise NewsanchorError(f"{out}: its {MANIFEST} is not a newsanchor dataset's; choose another --out")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise NewsanchorError(f"{out}: dataset of another format version ({manifest.get('format_version')}); choose another --out")
    return False


@dataclass(frozen=True)
class EarlierClip:
    """A clip folder found in the dataset before this run."""

    id: str
    summary: dict | None  # its clip.json; None when unreadable
    problem: str | None  # why it cannot stay in the dataset as it is; None when it can


def read_manifest(out: Path) -> dict:
    """The dataset's manifest, or {} when there is none or it is unreadable."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def earlier_clips(out: Path, config: PrepareConfig) -> dict[str, EarlierClip]:
    """The clip folders already in ``out``, in the order its manifest lists them (then by name):
    added clips come after them, so that training splits drawn in that order stay put."""
    clips_dir = out / CLIPS_DIR
    try:
        folders = [p for p in clips_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise NewsanchorError(f"{clips_dir}: cannot read the folder ({err.strerror})") from None
    listed = {c.get("id"): k for k, c in enumerate(read_manifest(out).get("clips", [])) if isinstance(c, dict)}
    found: dict[str, EarlierClip] = {}
    for folder in sorted(folders, key=lambda p: (listed.get(p.name, len(listed)), p.name)):
        try:
            summary = json.loads((folder / CLIP_INFO).read_text())
        except (OSError, ValueError):
            summary = None
        missing = [name for name in (CLIP_ARRAYS, CLIP_EDGES, CLIP_CROPS) if not (folder / name).is_file()]
        if not isinstance(summary, dict):
            summary, problem = None, f"is damaged (no readable {CLIP_INFO})"
        elif missing:
            problem = f"is incomplete (no {missing[0]})"
        elif summary.get("config_fingerprint") != config.fingerprint():
            problem = "was prepared with other settings"
        else:
            problem = None
        found[folder.name] = EarlierClip(folder.name, summary, problem)
    return found


def _distinct_id(base: str, path: Path, taken: set[str]) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()
    return next(f"{base}-{digest[:n]}" for n in range(6, len(digest) + 1) if f"{base}-{digest[:n]}" not in taken)


def claim_clip_ids(sources: Sequence[ClipSource], earlier: dict[str, EarlierClip]) -> list[tuple[ClipSource, str]]:
    """Each source with its SHA-256, under the id of its clip in the dataset: the earlier clip of
    the same recording (same content, or same path when the file changed) if there is one, else
    an id no earlier clip has, so that a new recording never overwrites an old one of the same name."""
    by_content = {c.summary.get("sha256"): c.id for c in earlier.values() if c.summary is not None and c.problem is None}
    taken = set(earlier) | {s.id for s in sources}
    claimed: set[str] = set()
    planned: list[tuple[ClipSource, str]] = []
    for source in sources:
        sha = sha256_file(source.path)
        clip_id = source.id
        if by_content.get(sha) is not None and by_content[sha] not in claimed:
            clip_id = by_content[sha]
        elif source.id in earlier:
            summary = earlier[source.id].summary
            if summary is not None and summary.get("source") != str(source.path):
                clip_id = _distinct_id(source.id, source.path, taken)
                taken.add(clip_id)
        claimed.add(clip_id)
        planned.append((dataclasses.replace(source, id=clip_id), sha))
    return planned


def names_of(clips: Sequence[EarlierClip], shown: int = 5) -> str:
    names = ", ".join(c.id for c in clips[:shown])
    return names + (f" and {len(clips) - shown} more" if len(clips) > shown else "")


def check_earlier_clips(out: Path, earlier: dict[str, EarlierClip], input_ids: set[str], replace: bool) -> list[EarlierClip]:
    """The earlier clips that are not the inputs' (``replace``: to be removed once the new dataset
    is written; else kept). Without ``replace``, one that cannot be kept as it is is refused here,
    before any work."""
    others = [c for c in earlier.values() if c.id not in input_ids]
    if not others or replace:
        return others
    unusable = [c for c in others if c.problem is not None]
    if unusable:
        first = unusable[0]
        if len(unusable) == 1:
            what, again = f"earlier clip {first.id} {first.problem}", "give its recording again to prepare it anew"
        else:
            what = f"{len(unusable)} earlier clips cannot stay as they are ({first.id} {first.problem}; {names_of(unusable)})"
            again = "give their recordings again to prepare them anew"
        raise NewsanchorError(f"{out}: {what}; {again}, or add --replace to remove the clips that are not among the inputs")
    return others


def earlier_skips(out: Path, inputs: Sequence[Path]) -> list[dict]:
    """The manifest's list of inputs left out with --skip-bad, less those that are inputs again."""
    now = {str(p) for p in inputs}
    return [s for s in read_manifest(out).get("skipped", []) if isinstance(s, dict) and s.get("source") not in now]
