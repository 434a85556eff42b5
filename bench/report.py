"""Turns results JSON into the console table, the plots (docs/img/perf-*.png) and
docs/performance.md. The measured parts are generated; the analysis (profiles, what made the
difference, proposals) is bench/findings.md, included as written.

    python bench/run.py --report-only bench/results/latest.json
"""
import json

from bench.common import ROOT

DOC = ROOT / "docs" / "performance.md"
IMG = ROOT / "docs" / "img"
FINDINGS = ROOT / "bench" / "findings.md"
RESULTS = ROOT / "bench" / "results"


def rows(data):
    out = []
    for scenario in data["scenarios"].values():
        out.extend(scenario["summary"].get("rows", []))
    return out


def _ratio(row):
    text = "" if row.get("ratio") is None else f"{row['ratio']:.2f}x"
    if row.get("ratio2") is not None:
        text += f" / {row['ratio2']:.1f}x"
    return text


def table(data):
    header = ("scenario", "variant", "target", "measured (median)", "ratio", "result")
    lines = [header]
    for row in rows(data):
        lines.append((row["scenario"], row["variant"], row["target"], row["measured"], _ratio(row),
                      "pass" if row["pass"] else "MISS"))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    text = []
    for k, line in enumerate(lines):
        text.append("  ".join(str(v).ljust(w) for v, w in zip(line, widths)))
        if k == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def markdown_table(data, others=()):
    """The results table; one extra pair of columns per (title, results) in `others`."""
    lookups = []
    for _, other in others:
        lookups.append({(row["scenario"], row["variant"]): row for row in rows(other)})
    head = "| scenario | variant | target | measured (median) | ratio | result |"
    sep = "|---|---|---|---|---|---|"
    for title, _ in others:
        head += f" {title} | result |"
        sep += "---|---|"
    out = [head, sep]
    for row in rows(data):
        line = (f"| {row['scenario']} | {row['variant']} | {row['target']} | {row['measured']} | "
                f"{_ratio(row)} | {'pass' if row['pass'] else '**MISS**'} |")
        for lookup in lookups:
            o = lookup.get((row["scenario"], row["variant"]))
            line += (f" {o['measured']} ({_ratio(o)}) | {'pass' if o['pass'] else '**MISS**'} |" if o else " not run | |")
        out.append(line)
    return "\n".join(out)


# Plots -------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(name, suffix, draw, figsize, **subplots):
    """docs/img/<name><suffix>.png, drawn by `draw(axes)` on a new figure; its path."""
    plt = _plt()
    fig, axes = plt.subplots(figsize=figsize, **subplots)
    draw(axes)
    path = IMG / f"{name}{suffix}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _axes(ax, xlabel=None, ylabel=None, title=None, legend=True, grid="both"):
    """The labels, legend and grid every plot gives its axes."""
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis=grid)


def plot_fanout(scenario, suffix=""):
    import numpy as np

    def latency(ax):
        for label in scenario["runs"][0]:
            runs = [r[label] for r in scenario["runs"] if label in r and r[label].get("latency_quantiles_ms")]
            if not runs:
                continue
            # Median over runs of each quantile.
            samples = np.median(np.asarray([r["latency_quantiles_ms"] for r in runs]), axis=0)
            ax.plot(samples, np.linspace(0, 1, samples.size), "-" if label.startswith("project") else "--", label=label)
        ax.set_xscale("log")
        ax.axhline(0.99, color="grey", lw=0.5)
        _axes(ax, "delivery latency, commit -> client (ms, log)", "fraction of deliveries",
              "One change to 1,000 dashboards (median of runs per quantile)")

    def cpu(ax):
        per = scenario["summary"]["per_variant"]
        names = list(per)
        values = [per[n]["us_per_delivery"] for n in names]
        ax.barh(names, values, color=["#888" if not n.startswith("project") else "#3a7" for n in names])
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.invert_yaxis()
        _axes(ax, "server CPU per delivered change (us, log; median of runs)", None,
              "Burst of 100 changes to 500 dashboards", legend=False, grid="x")

    return [_figure("perf-fanout-latency", suffix, latency, (8, 4.5)),
            _figure("perf-cpu-per-delivery", suffix, cpu, (8, 4))]


def plot_sustained(scenario, suffix=""):
    def draw(axes):
        ax1, ax2 = axes
        for label, r in scenario["runs"][0].items():
            series = {int(k): v for k, v in r["p99_series"].items()}
            xs = sorted(series)
            ax1.plot(xs, [series[x] for x in xs], label=label)
            ax2.plot(range(len(r["cpu_series"])), [100 * v for v in r["cpu_series"]], label=label)
        ax1.axhline(250, color="red", lw=0.8, ls="--", label="target 250 ms")
        ax1.set_yscale("log")
        _axes(ax1, None, "p99 latency of changes\ncommitted in that second (ms)", "Sustained 100 changes/s")
        _axes(ax2, "seconds into the run", "server CPU (% of a core)", legend=False)

    return [_figure("perf-sustained", suffix, draw, (8, 6), nrows=2, ncols=1, sharex=True)]


def plot_storm(scenario, suffix=""):
    def draw(ax):
        for label, r in scenario["runs"][0].items():
            xs = [x for x in r.get("resync_quantiles", []) if x is not None]
            ax.plot(xs, [i / (len(xs) - 1) * r["resynced"] / r["clients"] for i in range(len(xs))], label=label)
        ax.axvline(10, color="red", lw=0.8, ls="--", label="10 s")
        ax.axhline(0.99, color="grey", lw=0.5)
        _axes(ax, "seconds after SIGTERM", "fraction of clients resynchronised", "Reconnect storm after a restart (run 1)")

    return [_figure("perf-storm", suffix, draw, (8, 4))]


def plot_capacity(scenario, suffix=""):
    def draw(ax):
        for label, r in scenario["runs"][0].items():
            steps = r["steps"]
            ax.plot([s[0] for s in steps], [s[1] / 2**20 for s in steps], "o-", label=label)
        _axes(ax, "open connections", "server RSS (MiB)", "Idle connections: memory")

    return [_figure("perf-capacity", suffix, draw, (7, 3.5))]


PLOTS = {"fanout": plot_fanout, "sustained": plot_sustained, "storm": plot_storm, "capacity": plot_capacity}


def plots(data, names=tuple(PLOTS), suffix=""):
    """The images of the scenarios `names` that `data` holds (each scenario's plot function
    takes its results and the file names' suffix)."""
    images = []
    for name in names:
        if name in data["scenarios"]:
            images += PLOTS[name](data["scenarios"][name], suffix)
    return images


# The document ----------------------------------------------------------------------------

def _table(title, columns, lines):
    """A markdown table under a heading, and a blank line after it."""
    return [f"### {title}\n", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *lines, ""]


def _details(data):
    out = []
    s = data["scenarios"]
    if "fanout" in s:
        lines = []
        for label, v in s["fanout"]["summary"]["per_variant"].items():
            epf = f"{v['events_per_frame']:.1f}" if v.get("events_per_frame") else "n/a"
            lines.append(f"| {label} | {v['p50_ms']:.1f} | {v['p99_ms']:.1f} | {v['max_ms']:.1f} | {v['p99_vs_floor']:.2f} | "
                         f"{v['us_per_delivery']:.1f} | {v['cpu_vs_floor']:.2f} | {v['tutorial_vs_cpu']:.1f} | "
                         f"{v['drain_s']:.2f} | {epf} | {v['missing']} |")
        out += _table("Fan-out: every variant (medians of runs)",
                      ["variant", "p50 ms", "p99 ms", "max ms", "p99 / floor", "CPU us per delivery", "CPU / floor",
                       "tutorial / CPU", "burst drain s", "changes per frame in bursts", "missing"], lines)
    if "sustained" in s:
        lines = []
        for label, r in s["sustained"]["runs"][0].items():
            lat = r["latency"]
            lines.append(f"| {label} | {r['clients']} x {r['seconds']} | {r['achieved_rate']:.0f} | {lat.get('p50_ms', 0):.0f} | "
                         f"{lat.get('p99_ms', 0):.0f} | {lat.get('max_ms', 0):.0f} | {r['cpu_mean']:.0%} | {r['syncs']} | "
                         f"{r['equal']}/{r['clients']} |")
        out += _table("Sustained", ["variant", "clients x s", "achieved writes/s", "p50 ms", "p99 ms", "max ms",
                                    "server CPU", "client resyncs", "all equal to DB"], lines)
    if "storm" in s:
        lines = [f"| {label} | {v['clients']} | {v['restart_s']:.1f} | {v['within_10s_of_kill']:.1%} | {v['within_10s_of_ready']:.1%} | "
                 f"{v['p50_s']:.1f} | {v['p99_s']:.1f} | {v['lost']} | {v['all_equal']} | {v['resets']} |"
                 for label, v in s["storm"]["summary"]["per_variant"].items()]
        out += _table("Reconnect storm (medians of runs)",
                      ["variant", "clients", "restart s", "within 10 s of SIGTERM", "within 10 s of ready", "p50 s",
                       "p99 s", "lost", "all equal", "extra resets"], lines)
        out.append("Run 1, what the clients saw: " + "; ".join(
            f"{label}: close codes {r['close_codes']}, failed connection attempts {r['connect_errors']} {r.get('error_kinds', {})}"
            for label, r in s["storm"]["runs"][0].items()))
        out.append("")
    if "capacity" in s:
        lines = [f"| {label} | {r['connections']:,} | {r['still_open']:,} | {r['kib_per_connection']:.1f} | {r['rss_mib']:.0f} | "
                 f"{r['idle_cpu']:.1%} | {r['pings']:,} in {r['window_s']} s | {r['connect_s']:.0f} |"
                 for label, r in s["capacity"]["runs"][0].items()]
        out += _table("Idle capacity", ["variant", "open", "after idle", "KiB per connection", "RSS MiB", "idle CPU",
                                        "pings answered in window", "connect time s"], lines)
    if "writes" in s:
        lines = [f"| {label} | {v['writers_1']:.0f} | {v['writers_4']:.0f} | {v['published_equal']} |"
                 for label, v in s["writes"]["summary"]["per_variant"].items()]
        out += _table("Writes (medians of runs)",
                      ["variant", "1 writer /s", "4 writers /s", "every change delivered, client equal to DB"], lines)
    if "resume" in s:
        lines = [f"| {label} | {v['missed']:,} | {v['rows']} | {v['deleted']} | {v['bytes']:,} | {v['client_ms']:.1f} | "
                 f"{v['build_sync_ms']:.1f} | {v['fill_update_rate']:.0f} |"
                 for label, v in s["resume"]["summary"]["per_variant"].items()]
        out += _table("Resume (medians of runs)", ["variant", "missed changes", "rows in sync", "deletions", "bytes",
                                                   "client-measured ms", "build_sync ms", "QuerySet.update fill rate /s"],
                      lines)
    if "scaleout" in s and s["scaleout"]["summary"]["per_variant"]:
        lines = [f"| {label} | {v['api_rate']:.0f} | {v['api_p99_ms']:.0f} | {v['api_per_cpu_s']:.0f} | "
                 f"{v['fanout_p99_ms']:.0f} | {v['fanout_drain_s']:.2f} | {v['fanout_per_cpu_s']:.0f} | "
                 f"{v['storm_s']:.1f} | {v['storm_per_cpu_s']:.0f} | {v['missing']} | {v['failed']} |"
                 for label, v in s["scaleout"]["summary"]["per_variant"].items()]
        out += _table("Scale-out behind nginx (medians of runs)",
                      ["processes", "reports/s", "report p99 ms", "reports per server CPU-s", "fan-out p99 ms",
                       "burst drain s", "deliveries per server CPU-s", "1,000 syncs s", "syncs per server CPU-s",
                       "missing", "failed"], lines)
    return "\n".join(out)


COMPARISONS = (("before", "before.json"), ("prototypes", "prototypes.json"))


def write(data, others=None):
    """docs/performance.md for `data`; bench/results/before.json and prototypes.json, when
    present, are shown beside it (the same scenarios on the earlier revision, without and with
    the bench/experiments.py prototypes)."""
    IMG.mkdir(parents=True, exist_ok=True)
    if others is None:
        others = []
        if not data.get("quick"):
            for name, filename in COMPARISONS:
                path = RESULTS / filename
                if path.exists():
                    other = json.loads(path.read_text())
                    title = f"{name}: {other.get('revision', '?').split(' ')[0]}" + (
                        f" + `--patches {other['patches']}`" if other.get("patches") else "")
                    others.append((title, other))
    images = plots(data)
    other_images = []
    for k, (title, other) in enumerate(others):
        suffix = "-" + COMPARISONS[k][0] if k < len(COMPARISONS) else f"-other{k}"
        other_images.append((title, plots(other, ("fanout", "storm"), suffix)))
    m = data["machine"]
    parts = [
        "# Performance",
        "",
        "Generated by `bench/run.py` (the numbers, tables and plots) from "
        f"`bench/results/{'quick' if data.get('quick') else 'latest'}.json`; the analysis comes from `bench/findings.md`. "
        "Benchmarks live in `bench/` and never run inside the test suite.",
        "",
        "## How it was measured",
        "",
        f"- Code measured: {data.get('revision', 'not recorded')}.",
        "- Reproduce (the tree changes while others work, so the final numbers come from an export of one commit):",
        "",
        "  ```",
        "  rm -rf /tmp/benchsnap && mkdir /tmp/benchsnap && git archive HEAD | tar -x -C /tmp/benchsnap",
        "  git rev-parse --short HEAD > /tmp/benchsnap/REVISION",
        "  cd /tmp/benchsnap && /work/main/.venv/bin/python bench/run.py --runs 2 --no-report     # -> bench/results/latest.json",
        "  # optional: the prototypes (bench/experiments.py) -> bench/results/latest-patched.json",
        "  /work/main/.venv/bin/python bench/run.py fanout sustained storm writes --runs 2 --patches all --no-report",
        "  cp bench/results/latest.json /work/main/bench/results/   # before.json / prototypes.json: earlier runs to compare",
        "  cd /work/main && .venv/bin/python bench/run.py --report-only bench/results/latest.json",
        "  ```",
        "",
        "  In a plain checkout `.venv/bin/python bench/run.py --runs 3` does all of it in place.",
        f"- Command: `{data['command']}` (started {data['started']})"
        + "".join(f"; {title}: `{other['command']}` (started {other['started']})" for title, other in others) + ".",
        f"- Machine: {m['cpus']} cores ({m['cpu']}), Python {m['python']}, channels {m['channels']}, daphne {m['daphne']}, "
        f"uvicorn {m['uvicorn']}, websockets {m['websockets']}; load average at start {m['loadavg_start'][0]:.2f}, "
        f"at end {data.get('loadavg_end', [0])[0]:.2f} (the machine is shared, so every scenario measures its references in "
        "the same run and reports ratios and medians).",
        "- One server process, pinned to core 0 (`taskset -c 0`); the driver, which is also the load client, pinned to core 1, "
        "as are redis-server and the writer processes. PostgreSQL (shared server, unpinned) on 127.0.0.1:5432.",
        "- Each benchmark makes its own database (a SQLite file in /tmp or a uniquely named PostgreSQL database, copied "
        "from a migrated template) and its own redis-server on a free port, and removes them afterwards.",
        "- Configurations: **embedded** = SQLite + in-process layer, writes inside the server process "
        "(`bench/bench_asgi.py` wraps the project's ASGI app with a write endpoint, like the agents' HTTP API); "
        "**pg-redis** = PostgreSQL + channels-redis (the layer `dashboard_site/settings.py` picks: the pub/sub layer "
        "since a1586c3), writes from a separate writer process (`bench/dbtool.py write`).",
        "- A change is a real sequenced `Task.save()`; its commit time is `time.monotonic()` taken right after COMMIT "
        "(an `on_commit` hook registered before the publish). Latency = arrival at the client minus that. The references "
        "stamp the moment they start the broadcast.",
        "- References in the same run: **floor** = `bench/reference_raw.py` (raw `websockets` broadcast of the same JSON "
        "frames), **tutorial** = `bench/reference_tutorial.py` (every consumer in one group, `send_json` per consumer, "
        "daphne, in-memory layer with capacity raised so a burst is delivered in full).",
        "- The load client (`bench/loadclient.py`) speaks RFC 6455 on asyncio.Protocol so one client core stays cheaper per "
        "frame than the servers it measures; it timestamps each chunk on arrival before parsing. In `apply` mode it follows "
        "docs/protocol.md's client rules (`realtime/client.py`) and reconnects like the browser client (1012: 0.5 s + U(0, 5 s); else full-jitter backoff).",
        "- Fan-out and CPU scenarios push heartbeats out of the window (`REALTIME_HEARTBEAT_INTERVAL=600`, "
        "`REALTIME_HEARTBEAT_TIMEOUT=60`); sustained, storm and capacity run the defaults (25 s / 10 s). Logs: "
        "`DJANGO_DEBUG=0`, `REALTIME_LOG_LEVEL=WARNING`, daphne's default access log on.",
        "- Runs (medians over them): " + ", ".join(f"{name} {len(sc['runs'])}" for name, sc in data["scenarios"].items())
        + " (sustained and capacity are one long run each: 6,000 changes x 1,000 clients; 10,000 sockets). "
        "CPU per delivered change = server utime+stime during the burst, minus the idle rate measured just before, "
        "divided by changes x clients.",
        "",
        "## Results",
        "",
        markdown_table(data, others),
        "",
        "Ratios: latency and CPU rows against the floor measured in the same run (second number for CPU: how many times "
        "cheaper than the tutorial design); other rows against their target (below 1 is inside it).",
        "",
    ]
    findings = FINDINGS.read_text() if FINDINGS.exists() else ""
    marker = "## Where the time goes"
    closing, _, rest = findings.partition(marker)
    if rest:
        parts.append(closing.strip() + "\n")
        findings = marker + rest
    for path in images:
        parts.append(f"![{path.stem}](img/{path.name})")
        parts.append("")
    parts.append("## Details\n")
    parts.append(_details(data))
    for (title, other), (_, paths) in zip(others, other_images):
        parts.append(f"## Details, {title}\n")
        parts.append(f"Code: {other.get('revision', '?')}. Command: `{other['command']}`.\n")
        parts.append(_details(other))
        for path in paths:
            parts.append(f"![{path.stem}](img/{path.name})")
            parts.append("")
    parts.append(findings)
    DOC.write_text("\n".join(parts) + "\n")
    return DOC
