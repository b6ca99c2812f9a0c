"""Errors that reach the user as one line on stderr.

Every message names the input it is about, e.g. ``clip.mp4: no face found in any of 200 frames``.
"""

from __future__ import annotations

from os import PathLike


class NewsanchorError(Exception):
    """Base for errors the CLI prints as a single line and turns into a non-zero exit."""


class MediaError(NewsanchorError):
    """A media file cannot be used: missing, unreadable, not media, truncated, wrong streams."""

    def __init__(self, path: str | PathLike[str], problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class NoFaceError(MediaError):
    """No frame of a clip shows a face."""


class DatasetError(NewsanchorError):
    """A prepared dataset directory is missing, incomplete or of an unknown format."""
