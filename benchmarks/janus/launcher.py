"""Start Janus (Debian's `janus` 1.1.2) on loopback for a benchmark, inside a network namespace.

Janus never gathers ICE candidates on a loopback interface (and `ice_enforce_list = "lo"`
silently falls back to the network card). So Janus and its clients run inside a throwaway
network namespace in which a second, non-loopback interface also carries 127.0.0.1/32; Janus
then offers `127.0.0.1 typ host`, and the packets still flow through `lo`. The host's own
network is never touched: the namespace is created by `unshare --net` around one process tree
and disappears with its last process.

The recipe (`NETNS_SETUP`, run as the first thing inside `unshare --net`):

    ip link set lo up
    ip link add jbench0 type dummy     # this kernel has no `dummy` driver: falls back to
                                       # `ifb`, then `bridge` (any non-loopback link will do)
    ip addr add 127.0.0.1/32 dev jbench0
    ip link set jbench0 up

Two halves:

- `run_in_namespace(argv)` / `run_python_in_namespace(module, args)` run a command in a fresh
  namespace and wait for it (bounded); `reexec_in_namespace()` replaces the current process by
  itself under `unshare` (for a CLI: call `ensure_namespace()` first thing in `main()`).
  As root this is `unshare --net`; otherwise `unshare --map-root-user --net`.
- `running_janus(workdir)`, used by a process already inside such a namespace, starts Janus
  with our configuration (benchmarks/janus/config, copied into `workdir`), waits until its HTTP
  API answers, yields a `JanusInfo(http_url, pid, ...)` and stops Janus by its PID at the end.
  Janus also gets SIGKILL if the process that started it dies (PR_SET_PDEATHSIG).

    async with running_janus(tmp_path) as info:
        cpu0 = process_cpu_seconds(info.pid)
        ...                                   # clients in this process or its children
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import aiohttp

CONFIG_DIR = Path(__file__).resolve().parent / "config"
NETNS_LINK = "jbench0"
NETNS_ENV = "JANUS_BENCH_NETNS"  # set inside namespaces made here; informative only
NETNS_SETUP = f"""
set -e
ip link set lo up
for kind in dummy ifb bridge; do
    if ip link add {NETNS_LINK} type "$kind" 2>/dev/null; then break; fi
done
if ! ip link show {NETNS_LINK} >/dev/null 2>&1; then
    echo "janus netns: could not create a dummy, ifb or bridge link" >&2
    exit 97
fi
ip addr add 127.0.0.1/32 dev {NETNS_LINK}
ip link set {NETNS_LINK} up
"""


class JanusUnavailable(RuntimeError):
    """Janus, unshare or ip is missing, or we are not inside a suitable namespace."""


@dataclass(frozen=True)
class JanusInfo:
    http_url: str  # e.g. http://127.0.0.1:8088/janus
    pid: int
    log_path: Path  # Janus's own log (-L)
    conf_dir: Path  # the configuration this instance runs with


# ---- namespaces ---------------------------------------------------------------------------


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise JanusUnavailable(f"`{tool}` not found: apt-get install -y {package}")
    return path


def namespace_argv(argv: Sequence[str]) -> list[str]:
    """`argv` wrapped so that it runs in a fresh network namespace set up for Janus."""
    unshare = _require("unshare", "util-linux")
    _require("ip", "iproute2")
    flags = ["--net"] if os.geteuid() == 0 else ["--map-root-user", "--net"]
    # Without --fork, unshare execs sh which execs argv: the command keeps unshare's PID, so
    # killing that PID kills the command (and Janus through its parent-death signal).
    script = NETNS_SETUP + f'\nexport {NETNS_ENV}=1\nexec "$@"\n'
    return [unshare, *flags, "--", "/bin/sh", "-c", script, "janus-netns", *argv]


def run_in_namespace(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    capture_output: bool = False,
) -> subprocess.CompletedProcess:
    """Run `argv` in a fresh namespace and wait at most `timeout` seconds (then kill it)."""
    return subprocess.run(namespace_argv(argv), timeout=timeout, cwd=cwd, env=env,
                          capture_output=capture_output, text=capture_output, check=False)


def run_python_in_namespace(
    module: str, args: Sequence[str] = (), *, timeout: float, **kwargs
) -> subprocess.CompletedProcess:
    """`python -m module args...` with this interpreter, in a fresh namespace."""
    return run_in_namespace([sys.executable, "-m", module, *args], timeout=timeout, **kwargs)


def reexec_in_namespace() -> NoReturn:
    """Replace this process by the same command line run in a fresh namespace."""
    if os.environ.get(NETNS_ENV) == "1":
        raise JanusUnavailable("already re-executed in a namespace, but 127.0.0.1 is not on "
                               f"{NETNS_LINK}: refusing to loop")
    argv = namespace_argv([sys.executable, *sys.orig_argv[1:]])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def ensure_namespace() -> None:
    """Return if already inside a suitable namespace, else re-exec this command in one."""
    if not in_namespace():
        reexec_in_namespace()


def in_namespace() -> bool:
    """True if a non-loopback interface carries 127.0.0.1 (i.e. Janus will offer it)."""
    ip = shutil.which("ip")
    if ip is None:
        return False
    out = subprocess.run([ip, "-o", "-4", "addr", "show"], capture_output=True, text=True,
                         check=False, timeout=5).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] != "lo" and fields[3].startswith("127.0.0.1/"):
            return True
    return False


# ---- Janus --------------------------------------------------------------------------------


def write_config(dest: Path, *, http_port: int = 8088,
                 rtp_port_range: tuple[int, int] = (40000, 41999),
                 debug_level: int | None = None,
                 event_loops: int | None = None) -> Path:
    """Copy our Janus configuration to `dest`, with the given settings; returns `dest`.

    `event_loops`: None keeps Janus's default (one media thread and event loop per handle);
    N makes all handles share N loops.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for src in CONFIG_DIR.glob("*.jcfg"):
        shutil.copyfile(src, dest / src.name)
    core = dest / "janus.jcfg"
    text = core.read_text()
    text = re.sub(r'(?m)^(\s*rtp_port_range\s*=\s*)"[^"]*"',
                  rf'\g<1>"{rtp_port_range[0]}-{rtp_port_range[1]}"', text)
    if debug_level is not None:
        text = re.sub(r"(?m)^(\s*debug_level\s*=\s*).*$", rf"\g<1>{int(debug_level)}", text)
    if event_loops is not None:
        text = re.sub(r"(?m)^general: \{\n", f"general: {{\n\tevent_loops = {int(event_loops)}\n",
                      text, count=1)
    core.write_text(text)
    http = dest / "janus.transport.http.jcfg"
    http.write_text(re.sub(r"(?m)^(\s*port\s*=\s*)\d+", rf"\g<1>{http_port}", http.read_text()))
    return dest


# Looked up now, not in the forked child (where dlopen could deadlock on a lock held by
# another thread of the parent at fork time).
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: Janus dies if its parent dies


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def _wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            if proc.poll() is not None:
                raise JanusUnavailable(
                    f"janus exited with status {proc.returncode} at start:\n{_log_tail(log)}")
            try:
                async with http.get(f"{url}/info", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    info = await r.json(content_type=None)
                if info.get("janus") == "server_info":
                    return
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise JanusUnavailable(
                    f"janus did not answer on {url} within {timeout} s:\n{_log_tail(log)}")
            await asyncio.sleep(0.1)


async def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; always reaps the process."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
    await asyncio.to_thread(proc.wait)


@contextlib.asynccontextmanager
async def running_janus(
    workdir: str | os.PathLike,
    *,
    http_port: int = 8088,
    rtp_port_range: tuple[int, int] = (40000, 41999),
    debug_level: int | None = None,
    event_loops: int | None = None,
    start_timeout: float = 15,
    require_namespace: bool = True,
) -> AsyncIterator[JanusInfo]:
    """Run Janus with our configuration for the duration of the block.

    Must be called inside a namespace made by this module (see `ensure_namespace`), else
    Janus would offer the host's network address instead of 127.0.0.1.
    """
    janus = _require("janus", "janus")
    if require_namespace and not in_namespace():
        raise JanusUnavailable(
            "not inside a Janus benchmark namespace (no 127.0.0.1 on a non-loopback link): "
            "run through benchmarks.janus.launcher.run_in_namespace or ensure_namespace()")
    workdir = Path(workdir)
    conf = write_config(workdir / "janus-conf", http_port=http_port,
                        rtp_port_range=rtp_port_range, debug_level=debug_level,
                        event_loops=event_loops)
    log = workdir / "janus.log"
    url = f"http://127.0.0.1:{http_port}/janus"
    with open(workdir / "janus.out", "wb") as out:
        proc = subprocess.Popen(
            [janus, "-F", str(conf), "-C", str(conf / "janus.jcfg"), "-L", str(log)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=workdir, preexec_fn=_die_with_parent,
        )
    try:
        await _wait_ready(proc, url, log, start_timeout)
        yield JanusInfo(http_url=url, pid=proc.pid, log_path=log, conf_dir=conf)
    finally:
        await stop_process(proc)


# ---- measurements -------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


def process_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
