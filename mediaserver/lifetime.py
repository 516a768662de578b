"""How the server's child processes (the media workers, the recorder) live and end.

The server starts its children in sessions of their own, so a signal to its process group
(Ctrl-C in a terminal) reaches the server alone, which then stops them in order. When the server
dies without doing that (SIGKILL, a crash), each child finds out and leaves: the kernel sends it
SIGTERM as its parent exits (PR_SET_PDEATHSIG, Linux), and a look at getppid() every second
catches what that misses (another system, or a parent that died before the child set it up).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG): %s", os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as exc:
        log.warning("prctl(PR_SET_PDEATHSIG) unavailable: %s", exc)


def watch_parent(parent: int, on_gone: Callable[[], None], interval: float = 1.0) -> None:
    """Call `on_gone` once the process `parent` (0: the parent we have now) is no longer our
    parent, and have SIGTERM sent to us when it exits. Needs a running event loop."""
    parent = parent or os.getppid()
    _die_with_parent()
    loop = asyncio.get_running_loop()

    def check() -> None:
        if os.getppid() != parent:
            on_gone()
        else:
            loop.call_later(interval, check)

    check()  # after the prctl: a parent that died before it is caught here


async def stopping_within(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` for a shutdown to begin (a crash loop must not spin the CPU either);
    True if it has."""
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def end_process(process: asyncio.subprocess.Process, wait: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `wait` seconds; returns once it has."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), max(0.0, wait))
        except TimeoutError:
            log.warning("process %d did not exit within %.1f s of SIGTERM: killed", process.pid,
                        wait)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    await process.wait()
