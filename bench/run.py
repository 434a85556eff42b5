"""Run the benchmarks: prints a table, writes JSON to bench/results/, plots to docs/img/ and
the report to docs/performance.md.

    .venv/bin/python bench/run.py                       # everything, 3 runs (about 20 min)
    .venv/bin/python bench/run.py --quick               # smoke: small sizes, 1 run (< 3 min)
    .venv/bin/python bench/run.py fanout storm --runs 5
    .venv/bin/python bench/run.py --report-only bench/results/latest.json

Scenarios: fanout (latency + CPU per delivered change), sustained, capacity, storm, writes,
resume, hostile, agentapi, views, scaleout (1 and 2 processes behind nginx). The driver is
also the load client: it pins itself to core 1 and every server to core 0 (taskset), raises
its descriptor limit, and makes its own databases and redis-servers (removed at exit). Never part of the test suite.
"""
import argparse
import asyncio
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, cleanup_all, pin_self, raise_nofile  # noqa: E402
from bench.scenarios import EMBEDDED, SCALEOUT, Context  # noqa: E402

SCENARIOS = ["fanout", "sustained", "capacity", "storm", "writes", "resume", "hostile", "agentapi", "views", "scaleout"]
# Long scenarios run once per invocation even in a multi-run: their one run already holds
# thousands of samples (sustained: 6 million deliveries; capacity: 10,000 sockets).
SINGLE_RUN = {"sustained", "capacity"}
MAX_RUNS = {"storm": 2}  # a collapsing storm takes 90 s per run
RESULTS = ROOT / "bench" / "results"


def revision():
    """The measured code: REVISION (written next to a `git archive` export) or git's HEAD."""
    marker = ROOT / "REVISION"
    if marker.exists():
        return marker.read_text().strip()
    try:
        import subprocess

        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "realtime", "dashboard_site", "tasks"],
                               capture_output=True, text=True).stdout.strip()
        return head + (" + uncommitted changes in realtime/dashboard_site/tasks" if dirty else "")
    except OSError:
        return "unknown"


def machine():
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    import channels
    import daphne
    import uvicorn
    import websockets

    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release(), "channels": channels.__version__, "daphne": daphne.__version__,
            "uvicorn": uvicorn.__version__, "websockets": websockets.__version__,
            "loadavg_start": os.getloadavg()}


async def main(args):
    pin_self()
    nofile = raise_nofile()
    ctx = Context(quick=args.quick, configs=args.configs, servers=args.servers)
    ctx.huge = args.huge
    report = {"command": " ".join(["python", "bench/run.py", *sys.argv[1:]]), "quick": args.quick,
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "nofile": nofile,
              "configs": ctx.configs, "servers": ctx.servers, "patches": args.patches, "revision": revision(),
              "scenarios": {}}
    if args.merge and (RESULTS / result_name(args)).exists():
        previous = json.loads((RESULTS / result_name(args)).read_text())
        report["scenarios"] = previous["scenarios"]
        report["command"] = previous["command"] + " ; " + report["command"]
    runs = 1 if args.quick else args.runs
    for name in args.scenarios:
        module = importlib.import_module(f"bench.scenarios.{name}")
        n = 1 if name in SINGLE_RUN else min(runs, MAX_RUNS.get(name, runs))
        results = []
        t0 = time.monotonic()
        for i in range(n):
            print(f"== {name}: run {i + 1}/{n}", flush=True)
            results.append(await module.run(ctx))
        summary = module.summarize(results)
        report["scenarios"][name] = {"title": module.TITLE, "runs": results, "summary": summary,
                                     "seconds": time.monotonic() - t0}
        print(f"== {name} took {time.monotonic() - t0:.0f}s", flush=True)
        save(report, args)
    report["loadavg_end"] = os.getloadavg()
    return report


def result_name(args):
    return ("quick" if args.quick else "latest") + ("-patched" if args.patches else "") + ".json"


def save(report, args):
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / result_name(args)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=float))
    tmp.replace(path)
    return path


def cli():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="scenario", help=" ".join(SCENARIOS) + " (default: all)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--configs", nargs="+", default=[EMBEDDED, SCALEOUT], choices=[EMBEDDED, SCALEOUT])
    parser.add_argument("--servers", nargs="+", default=["daphne", "uvicorn"], choices=["daphne", "uvicorn", "granian"])
    parser.add_argument("--patches", default="", help="comma list of bench/experiments.py prototypes, or 'all'")
    parser.add_argument("--report-only", metavar="JSON", help="only render the report from a results file")
    parser.add_argument("--merge", action="store_true", help="keep the other scenarios of the existing results file")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/performance.md")
    parser.add_argument("--huge", action="store_true", help="views: also 5,000,000 tasks on PostgreSQL")
    args = parser.parse_args()
    if not args.scenarios:
        args.scenarios = SCENARIOS
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {sorted(unknown)}; choose from {SCENARIOS}")
    if args.patches:
        os.environ["BENCH_PATCHES"] = args.patches
    from bench import report as render

    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cleanup below runs
    if args.report_only:
        data = json.loads(Path(args.report_only).read_text())
    else:
        try:
            data = asyncio.run(main(args))
        finally:
            cleanup_all()
        path = save(data, args)
        print(f"results: {path.relative_to(ROOT)}")
    print(render.table(data))
    if not args.no_report:
        out = render.write(data)
        print(f"report: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    cli()
