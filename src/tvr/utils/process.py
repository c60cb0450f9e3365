"""Worker processes that do not outlive their launcher.

``torchrun`` and ``accelerate launch`` start each worker in a session of its own, so a ``kill -9`` of the launcher
(or a closed terminal) leaves the workers running, each holding its model in memory. A worker calls
:func:`exit_with_parent` once at start: Linux then delivers ``SIGTERM`` to it when its parent dies
(``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread checks the parent every second.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def _watch_parent(parent: int, interval: float) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os.kill(os.getpid(), signal.SIGTERM)


def exit_with_parent(interval: float = 1.0) -> None:
    """Make this process receive ``SIGTERM`` (and so exit) when the process that started it dies."""
    parent = os.getppid()
    if parent <= 1:  # started by init (a daemon) or already orphaned: nothing to follow
        return
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before the request took effect
                    os.kill(os.getpid(), signal.SIGTERM)
                return
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(parent, interval), daemon=True, name="tvr-parent-watch").start()


def launched_worker() -> bool:
    """Whether this process is a worker of a distributed launcher (``torchrun`` / ``accelerate launch``)."""
    return "LOCAL_RANK" in os.environ or "TORCHELASTIC_RUN_ID" in os.environ


def exit_worker(code: int) -> None:
    """End this process with ``code``. A launcher's worker skips the interpreter's teardown once its work is done and
    its output flushed: there, torch's gloo threads can abort an already finished run (``terminate called without
    an active exception``, exit -6), which makes the launcher report a failure and kill the other workers."""
    if not launched_worker():
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


__all__ = ["exit_with_parent", "exit_worker", "launched_worker"]
