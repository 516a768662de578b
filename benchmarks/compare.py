"""Side by side: the same scenario, the same bots and media, against two servers.

`run_compare` runs the scenario against two targets in one command and returns every run's
results with, per step both reached, the ratios the issue asks for, and per target the largest
webinar it carried within the limits. The targets are ours and Janus 1.1.2 (started by the
benchmark), or ours from this source tree ("after") and ours from another one, a git worktree
("before", `--baseline-root`): a change to mediaserver/ measured against the code without it,
or ours with the audience over ICE-TCP and over UDP (`--compare-transports`).

With `repeat` > 1 the two alternate in ABBA order (A, B, B, A, A, B...), so that whatever else
loads the shared machine meanwhile falls on both alike; the summary gives, per step, each
alternation's ratio and the medians.

The efficiency figure compared is packets received by the bots per CPU-second of the server
(`received_per_cpu_s`): Janus has no packet counter of its own, and the same measuring stick for
both keeps the ratio fair (ours also reports its own count, `forwarded_per_cpu_s`).
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics
from pathlib import Path
from typing import Any

from .runner import RunOptions, log, run
from .scenarios import LOSS_LIMIT, P99_LIMIT, Scenario

TARGETS = ("ours", "janus")


@dataclasses.dataclass(frozen=True)
class CompareTarget:
    key: str  # "ours", "janus", "base"
    label: str  # as the report names it
    options: dict[str, Any]  # RunOptions fields that make this target


# ours with the audience over ICE-TCP (A) and over UDP (B): the ratios are TCP / UDP
TRANSPORT_TARGETS = [CompareTarget("tcp", "ICE-TCP", {"ice_tcp": True}),
                     CompareTarget("udp", "UDP", {"ice_tcp": False})]
# what a comparison's report name ends with, by its second target
SUFFIX = {"janus": "-compare", "base": "-compare-before-after", "udp": "-tcp-vs-udp"}


def targets_for(baseline_root: Path | None, server_root: str = "") -> list[CompareTarget]:
    """Ours (from `server_root` if given) and Janus, or ours after and before a change."""
    if baseline_root is None:
        return [CompareTarget("ours", "ours" + (f" ({server_root})" if server_root else ""),
                              {"target": "ours"}),
                CompareTarget("janus", "Janus", {"target": "janus"})]
    return [CompareTarget("ours", f"after ({server_root or 'this tree'})", {"target": "ours"}),
            CompareTarget("base", f"before ({baseline_root})",
                          {"target": "ours", "server_root": str(baseline_root)})]


async def run_compare(scenario: Scenario, opts: RunOptions,
                      targets: list[CompareTarget] | None = None,
                      repeat: int = 1) -> dict[str, Any]:
    targets = targets or targets_for(None)
    a, b = targets
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    runs: list[dict[str, Any]] = []
    for alternation in range(max(1, repeat)):
        order = (a, b) if alternation % 2 == 0 else (b, a)
        for target in order:
            log(f"--- {scenario.name} against {target.label} "
                f"(alternation {alternation + 1} of {repeat})")
            result = await run(scenario, dataclasses.replace(opts, **target.options))
            result.update(compare_key=target.key, alternation=alternation)
            runs.append(result)
    by = {t.key: [r for r in runs if r["compare_key"] == t.key] for t in targets}
    pairs = [(by[a.key][i], by[b.key][i]) for i in range(len(by[a.key]))]
    alternations = [ratios(x["steps"], y["steps"]) for x, y in pairs]
    out: dict[str, Any] = {
        "scenario": scenario.name + SUFFIX.get(b.key, "-compare"),
        "timestamp": stamp, "description": scenario.description,
        "targets": [dataclasses.asdict(t) for t in targets], "repeat": repeat,
        "runs": runs,
        # the first alternation's runs under their target's key (as with one alternation)
        **{t.key: by[t.key][0] for t in targets},
        "ratios": alternations[0],
        "alternations": alternations,
        "medians": medians(alternations),
        "capacity": {t.key: capacity(by[t.key][0]["steps"]) for t in targets},
        "summary": summary(by[a.key][0]["steps"], by[b.key][0]["steps"]),
    }
    return out


def _ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def ratios(ours: list[dict[str, Any]], janus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per step label both targets measured: the pairs and ours / Janus (A / B)."""
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
            # ours both: the server's own count per CPU-second of its media worker(s)
            "forwarded_per_media_cpu_s": [o["forwarded_per_media_cpu_s"],
                                          j["forwarded_per_media_cpu_s"]],
            "media_ratio": _ratio(o["forwarded_per_media_cpu_s"],
                                  j["forwarded_per_media_cpu_s"]),
            "media_cpu_percent": [o["server"]["media_cpu_percent"],
                                  j["server"]["media_cpu_percent"]],
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


def _median(values: list[float | None], digits: int = 2) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), digits) if values else None


def medians(alternations: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per step label: every alternation's ratio and p99s, and their medians."""
    labels: dict[str, int] = {}
    for rows in alternations:
        for r in rows:
            labels.setdefault(r["label"], r["x"])
    out = []
    for label, x in sorted(labels.items(), key=lambda kv: kv[1]):
        rows = [next((r for r in rows if r["label"] == label), None) for rows in alternations]
        have = [r for r in rows if r is not None]
        out.append({
            "label": label, "x": x, "alternations": len(have),
            "efficiency_ratio": [r["efficiency_ratio"] for r in have],
            "efficiency_ratio_median": _median([r["efficiency_ratio"] for r in have]),
            "received_per_cpu_s_median": [
                _median([r["received_per_cpu_s"][i] for r in have], 0) for i in (0, 1)],
            "p99_ms": [[r["p99_ms"][i] for r in have] for i in (0, 1)],
            "p99_ms_median": [_median([r["p99_ms"][i] for r in have]) for i in (0, 1)],
            "p50_ms_median": [_median([r["p50_ms"][i] for r in have]) for i in (0, 1)],
            "media_ratio": [r["media_ratio"] for r in have],
            "media_ratio_median": _median([r["media_ratio"] for r in have]),
            "forwarded_per_media_cpu_s_median": [
                _median([r["forwarded_per_media_cpu_s"][i] for r in have], 0) for i in (0, 1)],
            "media_cpu_percent_median": [
                _median([r["media_cpu_percent"][i] for r in have], 1) for i in (0, 1)],
            "p99_ratio": [r["p99_ratio"] for r in have],
            "p99_ratio_median": _median([r["p99_ratio"] for r in have]),
            "loss_percent": [[r["loss_percent"][i] for r in have] for i in (0, 1)],
            "server_cpu_percent_median": [
                _median([r["server_cpu_percent"][i] for r in have], 1) for i in (0, 1)],
            "other_cpu_percent_max": max((max(r["other_cpu_percent"]) for r in have),
                                         default=None),
            # runs where A was at least as efficient as B and its p99 no worse
            "both_met": sum(1 for r in have if (r["efficiency_ratio"] or 0) >= 1.0
                            and r["p99_ms"][0] is not None and r["p99_ms"][1] is not None
                            and r["p99_ms"][0] <= r["p99_ms"][1]),
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
