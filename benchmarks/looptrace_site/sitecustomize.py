"""Loaded by every Python process whose PYTHONPATH starts with this folder: the server under
test when the runner is given `--trace-loop` (benchmarks/looptrace.py). It arranges for
`bench_looptrace.install` to run right after `mediaserver.worker` is imported, and does nothing
else; without BENCH_LOOPTRACE in the environment it does nothing at all."""

import os

if os.environ.get("BENCH_LOOPTRACE"):
    import bench_looptrace

    bench_looptrace.hook()
