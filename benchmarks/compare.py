"""Side by side: the same scenario, the same bots and media, against ours and then Janus.

`run_compare` runs the scenario twice in one command (ours first, then Janus 1.1.2 started by the
benchmark) and returns both runs' results with, per step both reached, the ratios the issue asks
for, and per target the largest webinar it carried within the limits.

The efficiency figure compared is packets received by the bots per CPU-second of the server
(`received_per_cpu_s`): Janus has no packet counter of its own, and the same measuring stick for
both keeps the ratio fair (ours also reports its own count, `forwarded_per_cpu_s`).
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics
from typing import Any

from .runner import RunOptions, log, run
from .scenarios import LOSS_LIMIT, P99_LIMIT, Scenario

TARGETS = ("ours", "janus")


async def run_compare(scenario: Scenario, opts: RunOptions) -> dict[str, Any]:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    runs: dict[str, Any] = {}
    for target in TARGETS:
        log(f"--- {scenario.name} against {target}")
        runs[target] = await run(scenario, dataclasses.replace(opts, target=target))
    return {"scenario": f"{scenario.name}-compare", "timestamp": stamp,
            "description": scenario.description, **runs,
            "ratios": ratios(runs["ours"]["steps"], runs["janus"]["steps"]),
            "capacity": {t: capacity(runs[t]["steps"]) for t in TARGETS},
            "summary": summary(runs["ours"]["steps"], runs["janus"]["steps"])}


def _ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def ratios(ours: list[dict[str, Any]], janus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per step label both targets measured: the pairs and ours / Janus."""
    theirs = {s["label"]: s for s in janus}
    out = []
    for o in ours:
        j = theirs.get(o["label"])
        if j is None:
            continue
        out.append({
            "label": o["label"], "x": o["x"],
            "received_per_cpu_s": [o["received_per_cpu_s"], j["received_per_cpu_s"]],
            "efficiency_ratio": _ratio(o["received_per_cpu_s"], j["received_per_cpu_s"]),
            "server_cpu_percent": [o["server"]["cpu_percent"], j["server"]["cpu_percent"]],
            "bots_cpu_percent": [sum(o["bots"]["cpu_percent"]), sum(j["bots"]["cpu_percent"])],
            "p50_ms": [o["latency_ms"]["p50"], j["latency_ms"]["p50"]],
            "p99_ms": [o["latency_ms"]["p99"], j["latency_ms"]["p99"]],
            "p99_ratio": _ratio(o["latency_ms"]["p99"], j["latency_ms"]["p99"]),
            "loss_percent": [o["loss_percent"], j["loss_percent"]],
            "join_p50_s": [o["join_s"]["bots"]["p50"], j["join_s"]["bots"]["p50"]],
            "rss_mib": [o["server"]["rss_mib"], j["server"]["rss_mib"]],
            "other_cpu_percent": [o["machine"]["other_percent"], j["machine"]["other_percent"]],
        })
    return out


def within_limits(step: dict[str, Any]) -> bool:
    """The stepped webinar's limits, and every subscriber joined."""
    loss, p99 = step["loss_percent"], step["latency_ms"]["p99"]
    return (loss is not None and loss <= LOSS_LIMIT and p99 is not None and p99 <= P99_LIMIT
            and not step["join_s"].get("never_joined") and not step["bots"]["failed"])


def capacity(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The largest step within the limits, its server CPU, and attendees per core at that
    step's cost (a linear projection: attendees x 100 / server CPU %)."""
    ok = [s for s in steps if within_limits(s)]
    if not ok:
        return {"largest": None, "server_cpu_percent": None, "per_core": None,
                "first_failing": steps[0]["label"] if steps else None}
    best = max(ok, key=lambda s: s["x"])
    cpu = best["server"]["cpu_percent"]
    failing = [s["label"] for s in steps if s["x"] > best["x"] and not within_limits(s)]
    return {"largest": best["x"], "label": best["label"], "server_cpu_percent": cpu,
            "per_core": round(best["x"] * 100 / cpu) if cpu else None,
            "first_failing": failing[0] if failing else None}


def summary(ours: list[dict[str, Any]], janus: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = ratios(ours, janus)
    eff = [p["efficiency_ratio"] for p in pairs if p["efficiency_ratio"] is not None]
    return {"steps_compared": len(pairs),
            "efficiency_ratio_median": round(statistics.median(eff), 2) if eff else None,
            "efficiency_ratio_range": [min(eff), max(eff)] if eff else None}
