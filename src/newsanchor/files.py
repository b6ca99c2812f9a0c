"""Small file-system helpers shared by everything that writes results a user keeps.

Writers follow three rules: check the output path before any work (:func:`check_output_path`),
write under a hidden temporary name beside the result and rename it into place when complete
(:func:`temporary_sibling`, :func:`write_atomic`), and sweep the temporaries that a killed
run of the same output left behind (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import NewsanchorError


def check_output_path(path: str | os.PathLike[str], *, suffixes: Sequence[str] = (), folder: bool = False) -> Path:
    """Refuse, before any work, an output that could not be written at the end of it.

    A file output must end in one of ``suffixes`` (when given), must not be a folder or a device
    (renaming a finished file onto ``/dev/null`` would replace the device), and the folder it
    goes in must exist and accept new files. A folder output (``folder=True``) may exist, as a
    folder; otherwise the nearest existing folder above it must accept new entries (the missing
    ones are created by the writer). Raises :class:`NewsanchorError` with one line naming
    ``path``; returns it as a Path.
    """
    path = Path(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise NewsanchorError(f"{path}: exists and is not a folder")
        target = path if path.is_dir() else _nearest_existing(path.absolute().parent)
        if not target.is_dir():
            raise NewsanchorError(f"{path}: {target} is not a folder")
    else:
        if suffixes and path.suffix.lower() not in {s.lower() for s in suffixes}:
            raise NewsanchorError(f"{path}: the output file name must end in {' or '.join(suffixes)}")
        if path.is_dir():
            raise NewsanchorError(f"{path}: is a folder; give a file name")
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            raise NewsanchorError(f"{path}: exists and is not a regular file")
        target = path.absolute().parent
        if not target.exists():
            raise NewsanchorError(f"{path}: folder {path.parent} does not exist")
        if not target.is_dir():
            raise NewsanchorError(f"{path}: {path.parent} is not a folder")
    _check_accepts_new_files(target, path)
    return path


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_accepts_new_files(folder: Path, path: Path) -> None:
    # Permission bits are not enough: root passes os.access everywhere, yet /proc and /sys
    # refuse new files. Creating (and removing) an empty file is the test that cannot lie.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NewsanchorError(f"{path}: cannot write in {folder} (permission denied)")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".newsanchor-write-test-")
    except OSError as err:
        raise NewsanchorError(f"{path}: cannot write in {folder} ({err.strerror or err})") from None
    os.close(fd)
    os.unlink(probe)


def temporary_sibling(path: str | os.PathLike[str]) -> Path:
    """The hidden name this process writes ``path`` under before renaming it into place:
    ``.NAME.tmp-PID.SUFFIX`` beside it. The PID lets a later run tell a temporary abandoned by a
    killed process from one still being written (:func:`remove_stale_temporaries`)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix or '.tmp'}")


def _temporaries_of(name: str) -> re.Pattern[str]:
    """Names :func:`temporary_sibling` and :func:`write_atomic` give temporaries of ``name``;
    group 1 is the writer's PID."""
    return re.compile(rf"\.{re.escape(name)}\.tmp-(\d+)[-.]")


def _process_alive(pid: int) -> bool:
    if pid <= 0:  # os.kill(0, …) would address our own process group
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    except (OverflowError, OSError):
        return False
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the hidden temporaries of ``path`` whose writing process is gone: left by a run
    killed (SIGKILL, power loss) before it could remove them itself. A temporary of a live
    process, another output's or any other file is never touched. Returns the removed paths."""
    path = Path(path)
    pattern = _temporaries_of(path.name)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed  # the writer will report the folder itself
    for entry in entries:
        match = pattern.match(entry.name)
        if match and entry.is_file(follow_symlinks=False) and not _process_alive(int(match[1])):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass  # someone else's to clean up
    return removed


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` on a hidden sibling of ``path`` and move the result onto ``path``
    only if it succeeded; nothing half-written is ever left under either name (and what a killed
    earlier run left is swept first)."""
    path = Path(path)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-", suffix=path.suffix or ".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the user's file gets the usual mode
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
