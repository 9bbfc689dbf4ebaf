"""Running the app under uvicorn: one process, or ``--workers N`` processes sharing one listening socket.

Several workers are several replicas on one machine: they share the database (and, with ``REDIS_URL``, the
limits), each runs its own queue worker, lease keeper and sweeper, and their metrics meet in one ``/metrics``
through prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``serve`` before any
worker starts). The emulator, when it serves, is started once by the parent and reached by every worker.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from litestar import Litestar
from uvicorn.supervisors.multiprocess import Multiprocess, Process

_APP: Litestar | None = None
"""This worker's app, for the drain hook (uvicorn's own config holds only its import string)."""


_PR_SET_PDEATHSIG = 1


def die_with_supervisor() -> None:
    """Ask the kernel for SIGTERM when this worker's parent dies (Linux's ``PR_SET_PDEATHSIG``), which the
    worker takes as any SIGTERM: it drains and exits. A supervisor killed outright (SIGKILL, the OOM killer)
    cannot stop its workers; they would serve on unsupervised, holding the port a restarted editgate needs."""
    parent = multiprocessing.parent_process()
    if sys.platform != "linux" or parent is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        structlog.get_logger("editgate.serving").warning("parent_death_signal_unset", errno=ctypes.get_errno())
    elif os.getppid() != parent.pid:  # it died before the request: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


def app_from_env() -> Litestar:
    """The factory each worker process calls: settings come from the environment ``serve`` prepared."""
    global _APP
    from router.app import create_app
    from router.logging import configure_logging
    from router.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    die_with_supervisor()
    _APP = create_app(settings)
    return _APP


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT: the gateway stops taking edits and its drain clock starts (``EDITGATE_DRAIN_S``);
    uvicorn stops accepting connections and waits that long for the ones open."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        app = self.config.app if isinstance(self.config.app, Litestar) else _APP
        if app is not None and not app.state.get("drain_started"):
            app.state.drain_started = time.monotonic()
            app.state.gateway.draining = True
        super().handle_exit(sig, frame)


def prepare_multiprocess_metrics(data_dir: Path) -> Path:
    """A fresh directory for the workers' metric files (values of dead workers from an earlier run would
    otherwise be summed in)."""
    target = data_dir / "metrics-multiproc"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(target)
    return target


class _DrainingProcess(Process):
    """uvicorn's worker process, serving with :class:`DrainingServer` instead of its plain server."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


class _DrainingWorkers(Multiprocess):
    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            process = _DrainingProcess(self.config, self.sockets)
            process.start()
            self.processes.append(process)


def run_workers(env: dict[str, str], host: str, port: int, workers: int, drain_s: float) -> None:
    """Start ``workers`` processes on one socket; each builds its app from ``env`` (the parent's settings)."""
    os.environ.update(env)
    config = uvicorn.Config("router.serving:app_from_env", factory=True, host=host, port=port, workers=workers,
                            log_config=None, access_log=False, timeout_graceful_shutdown=drain_s,
                            timeout_worker_healthcheck=60)  # fmt: skip  # start-up migrates; a busy box is slow
    _DrainingWorkers(config, sockets=[config.bind_socket()]).run()


def run_single(app: Litestar, host: str, port: int, drain_s: float) -> None:
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=drain_s)  # fmt: skip
    DrainingServer(config).run()
