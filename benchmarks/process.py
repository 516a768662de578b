"""Process setup shared by the benchmark's driver and its bot processes."""

from __future__ import annotations

import resource

import uvloop


def prepare_process() -> None:
    """Lift the open-file limit (two sockets per bot; inherited by the server we start) and
    run the event loop on uvloop, as the server does."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.install()
