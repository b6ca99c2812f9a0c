"""``newsanchor serve``: the app under uvicorn plus N worker processes, kept alive.

Workers are separate processes (spawned, so none inherits the server's threads or sockets):
rendering holds the CPU or GPU for seconds to minutes and must not stall the API. A small
supervisor thread restarts a worker that died; the job it held is requeued by the next claim,
because its process id is gone. SIGTERM stops the service like Ctrl-C (workers finish or are
ended, then the server exits 0), and workers whose server was killed outright stop by themselves.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
from pathlib import Path

from ..errors import NewsanchorError
from .security import is_loopback, resolve_token
from .settings import ServeSettings
from .store import open_store

log = logging.getLogger("newsanchor.serve")
SUPERVISE_EVERY_S = 2.0
STOP_GRACE_S = 10.0


class WorkerPool:
    """N worker processes; restarts any that exit while the pool runs."""

    def __init__(self, settings: ServeSettings, count: int, device: str | None = None, *, compile_renderer: bool = False):
        self.settings, self.count, self.device = settings, count, device
        self.compile_renderer = compile_renderer
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._halt = threading.Event()
        self._processes: list = [None] * count
        self._supervisor = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)

    def _start(self, index: int) -> None:
        from .worker import worker_process_main

        process = self._context.Process(
            target=worker_process_main, name=f"newsanchor-worker-{index}",
            args=(self.settings.db_spec, str(self.settings.anchors_dir), str(self.settings.outputs_dir),
                  f"w{index}", self._stop, self.device, self.compile_renderer))
        process.start()
        self._processes[index] = process
        log.info("worker w%d started (pid %d)", index, process.pid)

    def start(self) -> None:
        os.environ["NEWSANCHOR_WORKERS"] = str(self.count)  # inherited: each worker takes its share of cores
        for index in range(self.count):
            self._start(index)
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._halt.wait(SUPERVISE_EVERY_S):
            for index, process in enumerate(self._processes):
                if process is not None and not process.is_alive() and not self._halt.is_set():
                    log.warning("worker w%d (pid %d) exited with code %s; starting another", index, process.pid,
                                process.exitcode)
                    self._start(index)

    def stop(self) -> None:
        """Ask workers to stop after their current job; end those still busy after a grace period
        (their jobs are requeued at the next start)."""
        self._halt.set()
        self._stop.set()
        for process in self._processes:
            if process is not None:
                process.join(STOP_GRACE_S)
        for process in self._processes:
            if process is not None and process.is_alive():
                process.terminate()
                process.join(5)


def run_service(anchors_dir: Path, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
                db: str | None = None, token: str | None = None, device: str | None = None,
                compile_renderer: bool = False) -> None:
    """Serve the newsroom until interrupted.

    Raises:
        NewsanchorError: a bad --db, no usable anchor, or a token that cannot be saved.
    """
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if workers < 1:
        raise NewsanchorError(f"--workers {workers}: at least 1")
    anchors_dir = Path(anchors_dir)
    if not anchors_dir.is_dir():
        raise NewsanchorError(f"{anchors_dir}: no such anchors folder")
    settings = ServeSettings(anchors_dir=anchors_dir, db=db, host=host)
    store = open_store(settings.db_spec)  # a database that cannot be opened stops here, before anything starts
    recovered = store.recover()
    if recovered:
        log.warning("requeued %d job(s) left running by a previous server: %s", len(recovered), ", ".join(recovered))
    settings = ServeSettings(anchors_dir=anchors_dir, db=db, host=host,
                             token=resolve_token(host, token, settings.token_file,
                                                 announce=lambda line: print(line, file=sys.stderr, flush=True)))
    app = create_app(settings, store)
    if not app.state.anchors:
        raise NewsanchorError(f"{anchors_dir}: no usable anchor bundle (each sub-folder with an anchor.json; "
                              f"see the log lines above for why any were skipped)")
    if not is_loopback(host):
        log.info("listening beyond this machine: every API call needs Authorization: Bearer TOKEN")
    pool = WorkerPool(settings, workers, device, compile_renderer=compile_renderer)
    pool.start()
    terminate_default = _stop_cleanly_on_sigterm()
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    except _Terminated:
        log.info("stopped by SIGTERM")
    finally:
        if terminate_default is not None:
            signal.signal(signal.SIGTERM, terminate_default)  # a second SIGTERM ends the process at once
        pool.stop()
        store.close()


class _Terminated(BaseException):
    """SIGTERM arrived: unwind through ``finally`` like Ctrl-C does."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def _stop_cleanly_on_sigterm():
    """Make SIGTERM (a service manager's stop, ``kill PID``) unwind like Ctrl-C. uvicorn shuts
    down gracefully on SIGTERM and then raises it again under the handler it found; with the
    default one the process would die there, skipping ``pool.stop()`` and leaving the workers
    running without a server. Returns the handler it replaced (None off the main thread, where
    signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)
