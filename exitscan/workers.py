"""Where `exitscan process` gets its worker processes: a fork server, started early.

Workers come from a fork server, not from the command's own process: a process that has used
OpenCV's or pdfium's threads can leave a lock held in a forked child, which then hangs; the
server is a clean process that has only imported the reader. Starting the server takes ~0.5 s
(a fresh interpreter importing OpenCV, reportlab, pdfium); `start_early` begins that while the
command is still importing the same modules itself, so the two overlap. This module imports
nothing heavy for that reason.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from multiprocessing.context import BaseContext

#: What the fork server imports once, so that each worker starts with it loaded (the reader,
#: and the drawing code its blank references are rendered with).
PRELOAD = ["exitscan.pipeline", "exitscan.render"]


def context() -> BaseContext:
    """The start method for worker processes (a fork server; spawn on Windows)."""
    if sys.platform == "win32":
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start_early() -> None:
    """Start the fork server now, in the background; a no-op where there is none or it runs."""
    ctx = context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


__all__ = ["PRELOAD", "context", "start_early"]
