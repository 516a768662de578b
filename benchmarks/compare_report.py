"""The side-by-side report (benchmarks.compare): `<scenario>-compare-<timestamp>` as JSON, a
Markdown page with the ratios and both runs' full tables, and PNG plots of both targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import report


def _pair(values: list[Any], digits: int | None = None) -> str:
    def one(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float) and digits is not None:
            return f"{v:.{digits}f}"
        return f"{v:,}" if isinstance(v, int) else str(v)
    return " / ".join(one(v) for v in values)


RATIO_COLUMNS = [
    ("attendees", lambda r: r["label"]),
    ("received / server CPU-s, ours / Janus", lambda r: _pair(r["received_per_cpu_s"])),
    ("ratio", lambda r: "-" if r["efficiency_ratio"] is None else f"{r['efficiency_ratio']:.2f}"),
    ("server CPU %", lambda r: _pair(r["server_cpu_percent"])),
    ("bots CPU %", lambda r: _pair(r["bots_cpu_percent"], 0)),
    ("p50 ms", lambda r: _pair(r["p50_ms"])),
    ("p99 ms", lambda r: _pair(r["p99_ms"])),
    ("loss %", lambda r: _pair(r["loss_percent"])),
    ("join p50 s", lambda r: _pair(r["join_p50_s"])),
    ("RSS MiB", lambda r: _pair(r["rss_mib"])),
    ("other CPU %", lambda r: _pair(r["other_cpu_percent"])),
]


def ratio_table(rows: list[dict[str, Any]], pair: str = "ours / Janus") -> str:
    """`pair`: what A / B are, in the column names."""
    head = "| " + " | ".join(c.replace("ours / Janus", pair) for c, _ in RATIO_COLUMNS) + " |"
    sep = "|" + "---|" * len(RATIO_COLUMNS)
    return "\n".join([head, sep, *("| " + " | ".join(str(get(r)) for _, get in RATIO_COLUMNS)
                                   + " |" for r in rows)])


def _capacity_line(name: str, c: dict[str, Any]) -> str:
    if c["largest"] is None:
        return f"- {name}: no step within the limits (first step failing: {c['first_failing']})"
    tail = f"; next step over the limits: {c['first_failing']}" if c["first_failing"] else \
        "; every step measured was within the limits (the largest step is a lower bound)"
    return (f"- {name}: {c['largest']} attendees at {c['server_cpu_percent']}% server CPU, "
            f"about {c['per_core']:,} attendees per core at that cost{tail}")


def _targets(c: dict[str, Any]) -> list[dict[str, Any]]:
    return c.get("targets") or [{"key": "ours", "label": "ours"},
                                {"key": "janus", "label": "Janus"}]


def _pairs(values: list[Any], digits: int | None = None) -> str:
    return " ".join("-" if v is None else (f"{v:.{digits}f}" if digits is not None
                                            and isinstance(v, float) else str(v))
                    for v in values)


def _markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                      *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)])


def median_table(rows: list[dict[str, Any]]) -> str:
    return _markdown_table(
        ["attendees", "alternations", "ratio per alternation", "median ratio",
         "received / server CPU-s, medians", "p99 ms A, per alternation",
         "p99 ms B, per alternation", "p99 ms medians", "p50 ms medians",
         "server CPU % medians", "A >= 1.0 and p99 A <= B in", "other CPU % (max)"],
        [[r["label"], r["alternations"], _pairs(r["efficiency_ratio"]),
          r["efficiency_ratio_median"], _pair(r["received_per_cpu_s_median"]),
          _pairs(r["p99_ms"][0]), _pairs(r["p99_ms"][1]), _pair(r["p99_ms_median"]),
          _pair(r["p50_ms_median"]), _pair(r["server_cpu_percent_median"]),
          f"{r['both_met']} of {r['alternations']}", r["other_cpu_percent_max"]]
         for r in rows])


def transport_table(rows: list[dict[str, Any]]) -> str:
    """ICE-TCP (A) against UDP (B): the media worker's own count per CPU-second, p99, loss."""
    return _markdown_table(
        ["attendees", "alternations", "forwarded / media-worker CPU-s, TCP / UDP (medians)",
         "TCP / UDP per alternation", "TCP / UDP median",
         "media worker CPU %, TCP / UDP (medians)", "p99 ms TCP, per alternation",
         "p99 ms UDP, per alternation", "p99 TCP / UDP median", "loss % TCP, per alternation",
         "loss % UDP, per alternation", "other CPU % (max)"],
        [[r["label"], r["alternations"], _pair(r["forwarded_per_media_cpu_s_median"], 0),
          _pairs(r["media_ratio"]), r["media_ratio_median"],
          _pair(r["media_cpu_percent_median"]), _pairs(r["p99_ms"][0]), _pairs(r["p99_ms"][1]),
          r["p99_ratio_median"], _pairs(r["loss_percent"][0]), _pairs(r["loss_percent"][1]),
          r["other_cpu_percent_max"]] for r in rows])


def markdown(c: dict[str, Any], plot: str | None) -> str:
    ta, tb = _targets(c)
    first_a, first_b = c[ta["key"]], c[tb["key"]]
    janus = tb["key"] == "janus"
    transports = tb["key"] == "udp"
    lines = [f"# {c['scenario']} ({c['timestamp']})", "",
             c["description"] + f": {ta['label']} and {tb['label']}"
             + (" 1.1.2" if janus else "") + ", with the same bots, media and steps"
             + (f", {c.get('repeat', 1)} alternations in ABBA order" if c.get("repeat", 1) > 1
                else "") + ".", ""]
    lines += report.header(first_a)
    if janus:
        loops = first_b["options"].get("janus_event_loops")
        lines += [f"Janus: Debian's 1.1.2, VideoRoom, HTTP API, ICE-lite, event_loops = "
                  f"{loops if loops else 'default (one loop per handle)'}; in a network "
                  "namespace on loopback (benchmarks/janus/launcher.py)."]
    elif transports:
        lines += ["A: the attendees connect over ICE-TCP (the media worker's passive TCP "
                  "candidate, RFC 4571 framing: benchmarks/peer_tcp.py); B: over UDP. The "
                  "presenter publishes over UDP in both; the same server, options and steps."]
    else:
        lines += [f"A: {ta['label']}; B: {tb['label']} (our server from that source tree)."]
    title = "Ours / Janus" if janus else ("ICE-TCP / UDP" if transports else "After / before")
    lines += [""]
    if transports and c.get("medians"):
        lines += [f"## {title}: the media worker's efficiency, p99 and loss", "",
                  transport_table(c["medians"]), ""]
    if c.get("medians") and c.get("repeat", 1) > 1:
        lines += [f"## {title}: every alternation and the medians", "",
                  median_table(c["medians"]), ""]
    lines += [f"## {title}" + (" (first alternation)" if c.get("repeat", 1) > 1 else ""), "",
              ratio_table(c["ratios"], title.lower() if not janus else "ours / Janus"), ""]
    s = c["summary"]
    if s["efficiency_ratio_median"] is not None:
        lines += [f"Efficiency ratio (received packets per server CPU-second, ours / Janus): "
                  f"median {s['efficiency_ratio_median']}, range "
                  f"{s['efficiency_ratio_range'][0]}-{s['efficiency_ratio_range'][1]} over "
                  f"{s['steps_compared']} step(s).", ""]
    lines += ["Largest webinar within the limits (loss <= 1%, p99 <= 50 ms, every subscriber "
              "joined; first alternation):",
              *[_capacity_line(t["label"], c["capacity"][t["key"]]) for t in (ta, tb)], ""]
    runs = c.get("runs") or [first_a, first_b]
    labels = {t["key"]: t["label"] for t in (ta, tb)}
    for r in runs:
        name = labels.get(r.get("compare_key", r.get("target")), r.get("target"))
        alt = f", alternation {r['alternation'] + 1}" if "alternation" in r else ""
        lines += [f"## {name[0].upper() + name[1:]}{alt} ({r['timestamp']})", "",
                  report.table(r["steps"]), "", *report.group_section(r), *report.outcome(r)]
    lines += [
        "Received / server CPU-s: RTP packets (retransmissions included) the subscriber bots "
        "received, per CPU-second of the server's processes (ours: signalling + media workers; "
        "Janus: its process, all threads). Latency: publisher's send time to the subscriber "
        "socket's kernel receive time; ours reads the publisher's abs-send-time, which our "
        "server forwards; through Janus, which keeps no stamp of ours, the subscriber looks the "
        "send time up in the publisher's log (benchmarks/sendlog.py). Bots and server share the "
        "machine's cores: bots CPU is what the load generator itself used.", ""]
    if plot:
        lines += [f"![plots]({plot})", ""]
    return "\n".join(lines)


def plot(c: dict[str, Any], path: Path) -> bool:
    getters = [("received packets / server CPU-s", lambda s: s["received_per_cpu_s"]),
               ("server CPU % (of one core)", lambda s: s["server"]["cpu_percent"]),
               ("loss %", lambda s: s["loss_percent"]),
               ("added latency p99 ms", lambda s: s["latency_ms"]["p99"])]
    runs = c.get("runs") or [c[t["key"]] for t in _targets(c)]
    labels = {t["key"]: t["label"] for t in _targets(c)}

    def name(r: dict[str, Any]) -> str:
        label = labels.get(r.get("compare_key", r.get("target")), "?")
        return label + (f" #{r['alternation'] + 1}" if c.get("repeat", 1) > 1 else "")

    panels: list[tuple[str, list[report.Series]]] = [
        (title, [(name(r), [s["x"] for s in r["steps"]], [get(s) for s in r["steps"]])
                 for r in runs])
        for title, get in getters]
    return report.save_panels(path, f"{c['scenario']} ({c['timestamp']})", "attendees", panels)


def write(c: dict[str, Any], out_dir: Path, plots: bool = True) -> dict[str, Path]:
    return report.write_files(c, out_dir, plots, markdown, plot)
