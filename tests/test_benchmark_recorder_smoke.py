"""Smoke run of the recorder benchmark at the smallest scale: it runs and writes its report
(what is measured, not how fast: speed lives in benchmarks/ and docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_recorder_benchmark_writes_its_report(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.recorder", "--inputs", "1", "--modes", "composite",
         "pertrack", "--warmup", "2", "--window", "2", "--quiet-wait", "0", "--retries", "0",
         "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "recorder.json").read_text())
    assert report["machine"]["cpus"] >= 1
    runs = {r["mode"]: r for r in report["runs"]}
    assert set(runs) == {"composite", "pertrack"}
    for r in runs.values():
        assert r["inputs"] == 1 and 1.5 < r["window_s"] < 4
        assert r["recorder_cpu_s"] > 0 and r["rss_mib"] > 20
        assert 1.0 < r["recorded_s"] < 3.5  # media written during the 2 s window
    assert runs["composite"]["wall_lag_end_s"] is not None
    md = (tmp_path / "recorder.md").read_text()
    assert "| composite | 1 |" in md and "| pertrack | 1 |" in md
