"""The anchors in a folder, as ``newsanchor anchor list`` and the service list them: who, when,
and whether the quality report meets its targets (a bundle whose report fails says so)."""

from __future__ import annotations

import json
from pathlib import Path

from ..bundle import MANIFEST, load_bundle
from ..errors import NewsanchorError
from .quality import MEASURES

WORK_SUFFIX = ".work"


def quality_status(quality: dict | None) -> str:
    """A bundle manifest's ``quality`` entry in words: "quality met", "quality NOT met: …", or
    "no quality report" (bundles made with ``newsanchor bundle``)."""
    if not quality:
        return "no quality report"
    if quality.get("met"):
        return "quality met"
    labels = dict(MEASURES)
    return "quality NOT met: " + ", ".join(labels.get(key, key) for key in quality.get("not_met", []))


def list_anchors(folder: str | Path) -> list[dict]:
    """Every anchor bundle in ``folder`` (checked: format, version, checksums) and every anchor
    still being made there (a work folder of ``anchor create``), by name.

    Each entry: ``name``, ``path``, ``status`` (one line) and, for bundles, ``presenter``,
    ``created``, ``size``, ``quality`` (the manifest's summary or None), ``ok`` (it loads).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NewsanchorError(f"{folder}: no such folder")
    entries = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if path.name.endswith(WORK_SUFFIX) and (path / "state.json").is_file():
            try:
                state = json.loads((path / "state.json").read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("finished"):
                continue  # the work of a finished anchor, kept: the anchor itself is listed
            stages = list(state.get("seconds", {}))
            done = f" (done: {', '.join(stages)})" if stages else ""
            entries.append({"name": path.name[:-len(WORK_SUFFIX)], "path": str(path), "ok": False,
                            "status": f"being made{done}; run its `anchor create` command again to go on"})
            continue
        if not (path / MANIFEST).is_file():
            continue
        try:
            bundle = load_bundle(path)
        except NewsanchorError as err:
            entries.append({"name": path.name, "path": str(path), "ok": False, "status": f"unusable: {err}"})
            continue
        manifest = bundle.manifest
        quality = bundle.quality
        entries.append({"name": path.name, "path": str(path), "ok": True, "presenter": bundle.presenter.name,
                        "created": manifest.get("created"), "size": bundle.size, "quality": quality,
                        "status": f"{bundle.presenter.name}, made {manifest.get('created', '?')}, {bundle.size}² crops, "
                                  f"{quality_status(quality)}"})
    return entries
