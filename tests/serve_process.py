"""A real ``newsanchor serve`` for tests: a subprocess on a free loopback port, in its own
process group (so its worker processes can be found and never outlive the test), logging to a
file the test can read."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

READY_TIMEOUT_S = 180.0  # imports, bundle checksums and the first worker spawn on a busy 2-core machine
STOP_TIMEOUT_S = 30.0  # the service gives busy workers 10 s, then terminates them


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` from /proc (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name in (…) may hold spaces


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class ServeProcess:
    """``python -m newsanchor serve --anchors DIR --port FREE --workers N --device cpu``."""

    def __init__(self, anchors_dir: Path, *, workers: int, log_path: Path):
        self.anchors_dir, self.workers, self.log_path = Path(anchors_dir), workers, Path(log_path)
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start the service and return once it answers; a service that exits or stays silent
        fails the test with the end of its log."""
        self.port = free_loopback_port()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "newsanchor", "serve", "--anchors", str(self.anchors_dir),
                 "--port", str(self.port), "--workers", str(self.workers), "--device", "cpu"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"newsanchor serve exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/limits", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"newsanchor serve not answering after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def client(self, **options) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **options)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """The service's worker processes: its children started by multiprocessing's spawn (its
        resource tracker, the other kind of child, is left out)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and parent_pid(int(entry.name)) == self.process.pid:
                try:
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                if b"spawn_main" in command and process_exists(int(entry.name)):
                    pids.append(int(entry.name))
        return sorted(pids)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, as a service manager would; then SIGKILL to the whole process group, so no
        worker is left behind even when the server hung or was killed first. → the server's exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL every process of the service at once: the server and its workers."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # start_new_session: the group id is the server's pid
        except ProcessLookupError:
            pass  # the whole group is gone already
        self.process.wait(10)
