"""``newsanchor serve``: the app under uvicorn plus N video workers and M anchor workers, kept alive.

Workers are separate processes (spawned, so none inherits the server's threads or sockets):
rendering holds the CPU or GPU for seconds to minutes and must not stall the API. Anchor
workers (one by default) train anchors beside them, so a training of an hour never holds up
the videos. A small supervisor thread restarts a worker that died; the job it held is requeued
by the next claim, because its process id is gone (an anchor job then resumes from its work
folder). SIGTERM stops the service like Ctrl-C (workers finish or are
ended, then the server exits 0), and workers whose server was killed outright stop by themselves.

A start either serves or leaves things as they were: the port is taken first, and a start that
fails after that removes the job database, outputs folder and token file it made.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from ..errors import NewsanchorError
from .security import allowed_host_name, is_loopback, resolve_token
from .settings import ServeSettings, load_serve_config
from .store import open_store, sqlite_path
from .submit import sweep_orphaned_uploads

log = logging.getLogger("newsanchor.serve")
SUPERVISE_EVERY_S = 2.0
STOP_GRACE_S = 10.0


class WorkerPool:
    """``count`` video worker processes (w0, w1, …) and ``anchor_count`` anchor worker processes
    (a0, …); restarts any that exit while the pool runs."""

    def __init__(self, settings: ServeSettings, count: int, device: str | None = None, *, anchor_count: int = 0,
                 compile_renderer: bool = False, precision: str = "auto"):
        self.settings, self.count, self.anchor_count, self.device = settings, count, anchor_count, device
        self.compile_renderer, self.precision = compile_renderer, precision
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._halt = threading.Event()
        # (kind, name) of each process slot
        self._slots = [("video", f"w{i}") for i in range(count)] + [("anchor", f"a{i}") for i in range(anchor_count)]
        self._processes: list = [None] * len(self._slots)
        self._supervisor = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)

    def _start(self, index: int) -> None:
        from .worker import worker_process_main

        kind, name = self._slots[index]
        process = self._context.Process(
            target=worker_process_main, name=f"newsanchor-worker-{name}",
            args=(self.settings.db_spec, str(self.settings.anchors_dir), str(self.settings.outputs_dir),
                  name, self._stop, self.device, self.compile_renderer, self.precision, kind, self._threads(kind)))
        process.start()
        self._processes[index] = process
        log.info("worker %s (%s jobs) started (pid %d)", name, kind, process.pid)

    def _threads(self, kind: str) -> int:
        """CPU threads of a worker. Video workers share the cores as if they were alone (as they
        are while no anchor trains, which is most of the time); an anchor worker takes only its
        share of every worker's, so that a training slows the videos beside it, never stops them."""
        cores = os.cpu_count() or 1
        return max(1, cores // (self.count if kind == "video" else len(self._slots)))

    def start(self) -> None:
        os.environ["NEWSANCHOR_WORKERS"] = str(max(1, self.count))  # inherited, for anything that reads it
        for index in range(len(self._slots)):
            self._start(index)
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._halt.wait(SUPERVISE_EVERY_S):
            for index, process in enumerate(self._processes):
                if process is not None and not process.is_alive() and not self._halt.is_set():
                    log.warning("worker %s (pid %d) exited with code %s; starting another", self._slots[index][1],
                                process.pid, process.exitcode)
                    self._start(index)

    def stop(self) -> None:
        """Ask workers to stop after their current job (an anchor worker at its next progress
        report: its job resumes at the next start); end those still busy after a grace period
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


def trusted_proxy(value: str) -> str:
    """An operator's ``--trusted-proxy``: an IP address or network (10.0.0.0/8), normalised.

    Raises:
        NewsanchorError: anything else (a name, or ``*``: a proxy header believed from everyone
            lets every client choose the address the rate limit counts).
    """
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise NewsanchorError(f"--trusted-proxy {value[:100]!r}: give the IP address (or network, "
                              f"e.g. 10.0.0.0/8) of a reverse proxy in front of this service") from None
    return str(network.network_address) if network.num_addresses == 1 else str(network)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``, taken before anything else starts, so that a port in
    use stops the start with nothing done (not after workers joined the queue)."""
    if not 0 <= port <= 65535:
        raise NewsanchorError(f"--port {port}: use 1 to 65535 (or 0 for any free port)")
    address = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)  # as uvicorn binds
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once over old connections
        sock.bind((address, port))
        sock.listen(2048)  # at once: two sockets with SO_REUSEADDR may share a port until one listens
    except OSError as err:
        sock.close()
        hint = "; is another server using it? choose another --port" if err.errno == errno.EADDRINUSE else ""
        raise NewsanchorError(f"{host}:{port}: cannot listen there ({err.strerror or err}{hint})") from None
    return sock


def uvicorn_config(app, host: str, port: int, trusted_proxies: tuple[str, ...] = ()):
    """uvicorn's settings for the app. Proxy headers (X-Forwarded-For, X-Forwarded-Proto) are
    believed only from the proxies the operator named: uvicorn's default believes them from
    127.0.0.1, so any client on this machine, or any that reaches it through a local tunnel,
    could name its own address and step around the rate limit."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="info", proxy_headers=bool(trusted_proxies),
                          forwarded_allow_ips=list(trusted_proxies) or None)


class _MadeByThisStart:
    """What a start creates on disk, noted before it begins: the SQLite job database (with its
    journal files and any folders made for it), the outputs folder and the token file. A start
    that fails removes them again, so that a mistyped option leaves no trace; folders only when
    empty, so nothing another program put there is lost."""

    def __init__(self, settings: ServeSettings):
        self.files: list[Path] = []
        self.folders: list[Path] = []
        db = sqlite_path(settings.db_spec)
        if db is not None:
            db = db.absolute()
            self.files += [p for p in (db, *(db.with_name(db.name + end) for end in ("-wal", "-shm", "-journal")))
                           if not os.path.lexists(p)]
            self.folders += [folder for folder in db.parents if not os.path.lexists(folder)]  # deepest first
        self.folders += [settings.outputs_dir] if not os.path.lexists(settings.outputs_dir) else []
        self.files += [settings.token_file] if not os.path.lexists(settings.token_file) else []

    def remove(self) -> None:
        for path in self.files:
            Path(path).unlink(missing_ok=True)
        for folder in self.folders:
            try:
                folder.rmdir()
            except OSError:  # not empty (someone else's files) or never made
                pass


def run_service(anchors_dir: Path, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
                anchor_workers: int = 1, db: str | None = None, token: str | None = None, device: str | None = None,
                compile_renderer: bool = False, precision: str = "auto", allowed_hosts: tuple[str, ...] = (),
                trusted_proxies: tuple[str, ...] = (), config: Path | None = None) -> None:
    """Serve the newsroom until interrupted.

    ``workers`` processes render videos and ``anchor_workers`` train anchors (0: this service
    trains none; its anchor jobs wait for a machine that does). ``allowed_hosts``: names clients
    may reach the service by beside loopback's and ``host`` (see ``security.HostPolicy``);
    ``trusted_proxies``: addresses of reverse proxies whose X-Forwarded-For names the client
    (none: the header is ignored). ``config``: a YAML file of further settings
    (:class:`~.settings.ServeConfig`: how anchors are trained).

    Raises:
        NewsanchorError: a bad option or config file, a port that cannot be taken, a bad --db, no
            usable anchor, or a token that cannot be saved; nothing this start created is left behind.
    """
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    started = time.time()
    if workers < 1:
        raise NewsanchorError(f"--workers {workers}: at least 1")
    if anchor_workers < 0:
        raise NewsanchorError(f"--anchor-workers {anchor_workers}: 0 or more")
    anchors_dir = Path(anchors_dir)
    if not anchors_dir.is_dir():
        raise NewsanchorError(f"{anchors_dir}: no such anchors folder")
    allowed_hosts = tuple(allowed_host_name(name) for name in allowed_hosts)
    trusted_proxies = tuple(trusted_proxy(address) for address in trusted_proxies)
    file_settings = load_serve_config(config)
    listener = listen(host, port)
    settings = ServeSettings(anchors_dir=anchors_dir, db=db, host=host, allowed_hosts=allowed_hosts,
                             anchor_training=file_settings.anchor_training)
    made = _MadeByThisStart(settings)
    store = pool = server = None
    try:
        store = open_store(settings.db_spec)  # a database that cannot be opened stops here, before anything starts
        recovered = store.recover()
        if recovered:
            log.warning("requeued %d job(s) left running by a previous server: %s", len(recovered), ", ".join(recovered))
        swept = sweep_orphaned_uploads(settings.outputs_dir, started)
        if swept:
            log.info("removed %d unfinished upload(s) left by a server that stopped mid-request", len(swept))
        settings = replace(settings, token=resolve_token(host, token, settings.token_file,
                                                         announce=lambda line: print(line, file=sys.stderr, flush=True)))
        app = create_app(settings, store)
        if not app.state.anchors.current():
            raise NewsanchorError(f"{anchors_dir}: no usable anchor bundle (each sub-folder with an anchor.json; "
                                  f"see the log lines above for why any were skipped)")
        if not is_loopback(host):
            log.info("listening beyond this machine: every API call needs Authorization: Bearer TOKEN")
        pool = WorkerPool(settings, workers, device, anchor_count=anchor_workers, compile_renderer=compile_renderer,
                          precision=precision)
        pool.start()
        server = uvicorn.Server(uvicorn_config(app, host, port, trusted_proxies))
        bound = listener.getsockname()
        log.info("newsroom at http://%s:%d (Ctrl-C to stop)", f"[{bound[0]}]" if ":" in bound[0] else bound[0], bound[1])
        terminate_default = _stop_cleanly_on_sigterm()
        try:
            server.run(sockets=[listener])
        except _Terminated:
            log.info("stopped by SIGTERM")
        finally:
            if terminate_default is not None:
                signal.signal(signal.SIGTERM, terminate_default)  # a second SIGTERM ends the process at once
    finally:
        if pool is not None:
            pool.stop()
        if store is not None:
            store.close()
        listener.close()
        if server is None or not server.started:
            made.remove()


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
