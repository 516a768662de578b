"""Reports of a run: `<scenario>-<timestamp>.json`, a Markdown table, PNG plots (matplotlib,
when installed) and `latest.md`, which summarises the newest run of every scenario found in the
results folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

COLUMNS = [
    ("step", lambda s: s["label"]),
    ("pub/sub", lambda s: f"{s['bots']['publishers']}/{s['bots']['subscribers']}"),
    ("fwd/CPU-s", lambda s: _n(s["forwarded_per_cpu_s"])),
    ("fwd/media-CPU-s", lambda s: _n(s["forwarded_per_media_cpu_s"])),
    ("server CPU %", lambda s: s["server"]["cpu_percent"]),
    ("RSS MiB", lambda s: s["server"]["rss_mib"]),
    ("in pkt/s", lambda s: _n(s["traffic"]["packets_in_per_s"])),
    ("out pkt/s", lambda s: _n(s["traffic"]["packets_out_per_s"])),
    ("in Mbit/s", lambda s: round(s["traffic"]["bits_in_per_s"] / 1e6, 2)),
    ("out Mbit/s", lambda s: round(s["traffic"]["bits_out_per_s"] / 1e6, 1)),
    ("loss %", lambda s: s["loss_percent"]),
    ("p50 ms", lambda s: s["latency_ms"]["p50"]),
    ("p99 ms", lambda s: s["latency_ms"]["p99"]),
    ("join p50/p95 s", lambda s: f"{s['join_s']['bots']['p50']}/{s['join_s']['bots']['p95']}"),
    ("aiortc join s", lambda s: (s["join_s"].get("aiortc") or {}).get("seconds", "-")),
    ("samples ok/bad", lambda s: f"{s['samples']['verified']}/{s['samples']['failed']}"),
    ("bots CPU %", lambda s: "+".join(f"{c:.0f}" for c in s["bots"]["cpu_percent"])),
    ("other CPU %", lambda s: s["machine"]["other_percent"]),
]


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(steps: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(c for c, _ in COLUMNS) + " |"
    sep = "|" + "---|" * len(COLUMNS)
    rows = []
    for s in steps:
        cells = []
        for _, get in COLUMNS:
            try:
                cells.append(str(get(s)))
            except (KeyError, TypeError):
                cells.append("-")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *rows])


def _server(results: dict[str, Any]) -> str:
    o = results["options"]
    if results.get("target") == "janus":
        loops = o.get("janus_event_loops")
        return f"Janus 1.1.2, event_loops = {loops if loops else 'default (one per handle)'}"
    return f"{o['workers']} media worker process(es)"


def header(results: dict[str, Any]) -> list[str]:
    """The run's machine, server options and media, one line each."""
    m = results["machine"]
    o = results["options"]
    media = results.get("media", {})
    lines = [
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_gib']} GiB, Python "
        f"{m['python']}, kernel {m['kernel']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        f"Server: {_server(results)}; window {o['seconds']} s after a "
        f"{o['warmup']} s warm-up; {o['bot_procs']} bot process(es)"
        + (", the publishers in one of their own." if o.get("publisher_proc") else "."),
    ]
    if media.get("simulcast"):
        lines.append("Media per publisher: VP8 simulcast, 30 fps, " + ", ".join(
            f"{x['width']}x{x['height']} at {x['kbps']} kbit/s ({x['packets_per_s']} "
            "packets/s)" for x in media["simulcast"])
            + f" + Opus 20 ms ({media['audio_packets_per_s']} packets/s).")
    elif media:
        lines.append(f"Media per publisher: VP8 {media['width']}x{media['height']} 30 fps at "
                     f"{media['video_kbps']} kbit/s ({media['video_packets_per_s']} packets/s) "
                     f"+ Opus 20 ms ({media['audio_packets_per_s']} packets/s).")
    if o.get("twcc") or o.get("simulcast"):
        lines.append(f"Transport-cc: {'on' if o.get('twcc') else 'off'} for the publisher; "
                     f"subscribers send feedback every {o.get('feedback_interval', 0.1)} s "
                     "wherever the server's offer negotiates it.")
    if o.get("ice_tcp"):
        per = [s.get("transport", {}) for s in results["steps"]]
        lines.append("Attendees over ICE-TCP (benchmarks/peer_tcp.py: an active TCP connection "
                     "to the media worker's passive candidate, RFC 4571 framing), the "
                     "publisher over UDP; per step, TCP connections the bots held / the "
                     "server accepted so far, and packets it dropped for a full connection "
                     "queue in the window: " + ", ".join(
                         f"{s['label']} {t.get('tcp_connected')} / "
                         f"{t.get('server_tcp_connections')}, "
                         f"{t.get('server_tcp_send_dropped')} dropped"
                         for s, t in zip(results["steps"], per, strict=True)) + ".")
    src = results.get("source")
    if src and results.get("target") != "janus":
        lines.append(f"Server code: commit {src['commit'][:12]} of {src['root']}"
                     + (" with uncommitted changes in mediaserver/ or signaling/"
                        if src.get("server_changes_uncommitted") else "") + ".")
    return lines


FOOTNOTE = (
    "fwd/CPU-s: RTP packets the server sent (its /metrics `packets_out`) per CPU-second of "
    "the whole server (signalling + media workers); fwd/media-CPU-s: per CPU-second of the "
    "media worker processes only. Latency: publisher's abs-send-time stamp to the "
    "subscriber socket's kernel receive timestamp. Loss: sequence gaps still open 200 ms "
    "after they were seen (NACK/RTX had its chance). Join: WebSocket open to the first "
    "complete keyframe (bots) or first decoded frame (aiortc).")
FOOTNOTE_JANUS = (
    "Janus 1.1.2 (Debian), VideoRoom over its HTTP API, in a network namespace on loopback. "
    "fwd/CPU-s: RTP packets the bots received (retransmissions included; Janus has no "
    "counter of its own) per CPU-second of the Janus process, all threads. Latency: "
    "publisher's send time, looked up in its send log (benchmarks/sendlog.py), to the "
    "subscriber socket's kernel receive timestamp. Loss: sequence gaps still open 200 ms "
    "after they were seen. Join: start of signalling to the first complete keyframe.")


GROUP_NAMES = {"all": "audience", "weak": "weak links", "L0": "showing layer 0",
               "L1": "showing layer 1", "L2": "showing layer 2"}


def group_section(results: dict[str, Any]) -> list[str]:
    """Per step and group of subscribers (weak links, layers shown): what each received, its
    repair, and for the weak ones their emulated link. Empty when the run had one group and
    no transport-cc feedback."""
    steps = results["steps"]
    multi = any(len(s.get("groups", {})) > 1 or "weak" in s.get("groups", {}) for s in steps)
    fb = any((s.get("twcc") or {}).get("feedback_from_subscribers") for s in steps)
    if not multi and not fb:
        return []
    head = ("| step | group | subs | kbit/s each (video) | pkt/s each | loss % | NACKs sent | "
            "RTX recv | padding pkt/s each | PLIs on loss | tcc feedback sent | link kbit/s | "
            "offered kbit/s each "
            "| delivered kbit/s each | link drops % | queue delay mean / max ms | p50 / p99 "
            "ms |")
    lines = ["Per group of subscribers (kbit/s: SRTP payload as it reached the subscriber, "
             "after its emulated link; link figures count IP+UDP headers as tbf does):", "",
             head, "|" + "---|" * 17]
    for st in steps:
        for name, g in sorted(st.get("groups", {}).items()):
            link = g.get("link") or {}
            lat = g.get("latency_ms") or {}
            lines.append(
                f"| {st['label']} | {GROUP_NAMES.get(name, name)} | {g['subscribers']} | "
                f"{g['kbps_per_subscriber']} ({g['video_kbps_per_subscriber']}) | "
                f"{g['packets_per_s_per_subscriber']} | {g['loss_percent']} | "
                f"{g['nacks_sent']} | {g['rtx_received']} | "
                f"{g.get('padding_per_s_per_subscriber', '-')} | {g['plis_on_loss']} | "
                f"{g['feedback_sent']} | {link.get('kbps', '-')} | "
                f"{link.get('offered_kbps_per_subscriber', '-')} | "
                f"{link.get('delivered_kbps_per_subscriber', '-')} | "
                f"{link.get('dropped_percent', '-')} | "
                f"{link.get('mean_queue_delay_ms', '-')} / "
                f"{link.get('max_queue_delay_ms_since_start', '-')} | "
                f"{lat.get('p50', '-')} / {lat.get('p99', '-')} |")
    rec = [(st["label"], st.get("recovery", {}), st.get("twcc", {})) for st in steps]
    lines += ["", "Server side, whole window: " + "; ".join(
        f"{label}: {r.get('server_retransmissions', '-')} retransmissions, "
        f"{r.get('plis_to_publishers', '-')} keyframe requests reached the publisher "
        f"({r.get('plis_ignored_by_publishers', '-')} within 300 ms of one it answered), "
        f"{t.get('feedback_to_publishers', '-')} transport-cc feedback packets to it"
        for label, r, t in rec) + ".", ""]
    return lines


def outcome(results: dict[str, Any]) -> list[str]:
    """Why stepping stopped, a failure, and the steps' notes (paragraphs, blank-separated)."""
    lines = []
    if results.get("stopped"):
        lines += [f"Stepping stopped: {results['stopped']}.", ""]
    if results.get("error"):
        lines += [f"Run failed: {results['error']}.", ""]
    notes = [(s["label"], n) for s in results["steps"] for n in s.get("notes", [])]
    errors = [(s["label"], e) for s in results["steps"] for e in s.get("sample_errors", [])]
    if notes or errors:
        lines += ["Notes:", *[f"- {label}: {n}" for label, n in notes],
                  *[f"- {label}: sample decode: {e}" for label, e in errors], ""]
    return lines


def markdown(results: dict[str, Any], plot: str | None = None) -> str:
    lines = [f"# {results['scenario']} ({results['timestamp']})", "",
             results.get("description", ""), "", *header(results)]
    lines += ["", table(results["steps"]), "", *group_section(results), *outcome(results)]
    lines += [FOOTNOTE_JANUS if results.get("target") == "janus" else FOOTNOTE, ""]
    if plot:
        lines += [f"![plots]({plot})", ""]
    return "\n".join(lines)


Series = tuple[str, list[float], list[float | None]]  # label, x, y (None: no value)


def save_panels(path: Path, title: str, xlabel: str,
                panels: list[tuple[str, list[Series]]]) -> bool:
    """Four panels (2 x 2) of line plots into a PNG; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (panel_title, series) in zip([a for row in axes for a in row], panels, strict=False):
        for label, xs, ys in series:
            ax.plot(xs, [float("nan") if y is None else y for y in ys], marker="o", label=label)
        ax.set_title(panel_title)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        if len(series) > 1:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot(results: dict[str, Any], path: Path) -> bool:
    steps = results["steps"]
    if not steps:
        return False
    x = [s["x"] for s in steps]
    panels: list[tuple[str, list[Series]]] = [
        ("forwarded packets / server CPU-s",
         [("whole server", x, [s["forwarded_per_cpu_s"] for s in steps]),
          ("media workers", x, [s["forwarded_per_media_cpu_s"] for s in steps])]),
        ("CPU % (of one core)",
         [("server", x, [s["server"]["cpu_percent"] for s in steps]),
          ("bots", x, [sum(s["bots"]["cpu_percent"]) for s in steps])]),
        ("loss %", [("loss", x, [s["loss_percent"] for s in steps])]),
        ("added latency ms",
         [("p50", x, [s["latency_ms"]["p50"] for s in steps]),
          ("p99", x, [s["latency_ms"]["p99"] for s in steps])]),
    ]
    xlabel = "attendees" if results["scenario"].startswith("webinar") else "participants"
    return save_panels(path, f"{results['scenario']} ({results['timestamp']})", xlabel, panels)


def write_files(results: dict[str, Any], out_dir: Path, plots: bool,
                render: Callable[[dict[str, Any], str | None], str],
                draw: Callable[[dict[str, Any], Path], bool]) -> dict[str, Path]:
    """`<scenario>-<timestamp>` .json, .md (from `render`) and .png (from `draw`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = f"{results['scenario']}-{results['timestamp']}"
    paths = {"json": out_dir / f"{base}.json", "md": out_dir / f"{base}.md"}
    png = out_dir / f"{base}.png"
    has_plot = plots and draw(results, png)
    if has_plot:
        paths["png"] = png
    paths["json"].write_text(json.dumps(results, indent=1) + "\n")
    paths["md"].write_text(render(results, png.name if has_plot else None))
    return paths


def write(results: dict[str, Any], out_dir: Path, plots: bool = True) -> dict[str, Path]:
    paths = write_files(results, out_dir, plots, markdown, plot)
    paths["latest"] = write_latest(out_dir)
    return paths


def write_latest(out_dir: Path) -> Path:
    """latest.md: the newest run of each scenario (and worker count) in the folder, one
    table each."""
    newest: dict[str, dict[str, Any]] = {}
    for path in sorted(out_dir.glob("*-*.json")):
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(results, dict) or "steps" not in results or "scenario" not in results:
            continue  # another tool's JSON (packet_path.json)
        key = results["scenario"] if results.get("target") == "janus" else \
            f"{results['scenario']}, {results['options']['workers']} worker(s)"
        if results["timestamp"] >= newest.get(key, {}).get("timestamp", ""):
            newest[key] = results
    lines = ["# Latest load-generator results", "",
             "Regenerated after every `python -m benchmarks run ...`; each scenario's newest "
             "run in this folder per worker count (side-by-side runs with Janus have their own "
             "`*-compare-*` files). Details and plots are in the per-run files.", ""]
    for name in sorted(newest):
        r = newest[name]
        m = r["machine"]
        lines += [f"## {name} ({r['timestamp']}, {m['cpus']} CPUs)", "",
                  r.get("description", ""), "", table(r["steps"]), ""]
        if r.get("stopped"):
            lines += [f"Stepping stopped: {r['stopped']}.", ""]
    path = out_dir / "latest.md"
    path.write_text("\n".join(lines))
    return path
