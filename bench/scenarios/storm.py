"""Reconnect storm: 2,000 clients after a restart.

2,000 clients apply the stream and reconnect like the browser client (1012: 0.5 s + U(0, 5 s);
a refused connection: full-jitter backoff). The server gets SIGTERM (the hub closes every
socket with 1012), 50 changes are committed while it is down, and the same command starts
it again on the same port. A client is resynchronised when its first `sync` after the
restart has been applied. Then 20 more changes are written and every client must equal the
database, with no change applied twice (duplicates are ignored by the `seq` rule and
counted) and none missing.
"""
import asyncio
import time

from bench.common import cpu_seconds, median, percentile, run_tool
from bench.loadclient import Fleet
from bench.scenarios import Project, warn

NAME = "storm"
TITLE = "Reconnect storm after a restart"


async def measure(ctx, config):
    clients = ctx.size(2000, 500)
    project = Project(ctx, config)
    result = {"config": config, "clients": clients}
    try:
        server = project.start()
        fleet = Fleet(server.port, project.cookie, "apply", reconnect=True)
        await fleet.connect(clients, concurrency=100)
        await project.write(20, rate=50)
        head = (await project.state())["head"]
        await fleet.wait(lambda: all(c.last == head for c in fleet.clients), 30)
        # Writes made while the server is down: an external writer, warmed up, starts at t_kill.
        t_kill = time.monotonic() + 2.0
        writer = asyncio.ensure_future(run_tool(
            ["write", "--n", 50, "--rate", 0, "--start-at", t_kill], project.writer_env))
        await asyncio.sleep(max(0.0, t_kill - time.monotonic()))
        fleet.mark = t_kill
        old_pid = server.pid
        await server.aterminate()
        t_down = time.monotonic()
        await writer
        new = await project.astart(port=server.port)
        t_ready = time.monotonic()
        c0 = cpu_seconds(new.pid)
        done = await fleet.wait(lambda: all(c.resynced_at is not None and c.synced for c in fleet.clients), 40, 0.05)
        t_done = time.monotonic()
        storm_cpu = cpu_seconds(new.pid) - c0
        if not done:
            warn(f"storm {config}: {sum(1 for c in fleet.clients if c.resynced_at is None)} clients not resynced")
        answer = await project.write(20, rate=50)
        final = answer["stamps"][-1][0]
        await fleet.wait(lambda: all(c.last is not None and c.last >= final for c in fleet.clients), 30)
        truth = await project.state()
        expected = (truth["tasks"], truth["agents"])
        equal = sum(1 for c in fleet.clients if c.versions() == expected)
        resync = [c.resynced_at - t_kill for c in fleet.clients if c.resynced_at is not None]
        resync_ready = [c.resynced_at - t_ready for c in fleet.clients if c.resynced_at is not None]
        codes = {}
        for c in fleet.clients:
            for code in c.close_codes:
                codes[str(code)] = codes.get(str(code), 0) + 1
        result.update(
            old_pid=old_pid, shutdown_s=t_down - t_kill, restart_s=t_ready - t_kill,
            resynced=len(resync), lost=clients - len(resync),
            within_10s_of_kill=sum(1 for v in resync if v <= 10.0) / clients,
            within_10s_of_ready=sum(1 for v in resync_ready if v <= 10.0) / clients,
            p50_s=percentile(resync, 50), p99_s=percentile(resync, 99), max_s=max(resync) if resync else None,
            p99_from_ready_s=percentile(resync_ready, 99),
            storm_s=t_done - t_ready, storm_cpu_s=storm_cpu,
            equal=equal, all_equal=equal == clients,
            duplicates_ignored=sum(c.duplicates for c in fleet.clients),
            gaps=sum(c.gaps for c in fleet.clients),
            resets=sum(c.resets for c in fleet.clients) - clients,
            connect_errors=sum(c.connect_errors for c in fleet.clients), close_codes=codes,
            error_kinds=fleet.error_kinds,
            resync_quantiles=[percentile(resync, q) for q in [i / 4 for i in range(401)]] if resync else [],
        )
        await fleet.close()
    finally:
        project.stop()
    return result


async def run(ctx):
    results = {}
    for config in ctx.configs:
        label = f"project/daphne/{config}"
        ctx.log(f"  {label} ...")
        r = await measure(ctx, config)
        ctx.log(f"    restart {r['restart_s']:.1f}s, resynced {r['resynced']}/{r['clients']}, "
                f"{r['within_10s_of_kill']:.1%} within 10 s of SIGTERM (p99 {r['p99_s']:.1f}s), "
                f"equal {r['equal']}, resets {r['resets']}, refused {r['connect_errors']} {r['error_kinds']}, codes {r['close_codes']}")
        results[label] = r
    return results


def summarize(runs):
    rows, per = [], {}
    for label in runs[0]:
        rs = [r[label] for r in runs]
        within = median([r["within_10s_of_kill"] for r in rs])
        p99 = median([r["p99_s"] for r in rs])
        lost = sum(r["lost"] for r in rs)
        equal = all(r["all_equal"] for r in rs)
        per[label] = {"within_10s_of_kill": within, "within_10s_of_ready": median([r["within_10s_of_ready"] for r in rs]),
                      "p50_s": median([r["p50_s"] for r in rs]), "p99_s": p99,
                      "p99_from_ready_s": median([r["p99_from_ready_s"] for r in rs]),
                      "restart_s": median([r["restart_s"] for r in rs]), "lost": lost, "all_equal": equal,
                      "resets": median([r["resets"] for r in rs]), "clients": rs[0]["clients"]}
        rows.append({
            "scenario": f"reconnect storm, {rs[0]['clients']:,} clients", "variant": label,
            "target": "99% resynced within 10 s, none lost or duplicated",
            "measured": f"{within:.1%} within 10 s of SIGTERM (p99 {p99:.1f} s, restart {per[label]['restart_s']:.1f} s), "
                        f"lost {lost}, {'all' if equal else 'NOT all'} equal",
            "ratio": p99 / 10.0, "pass": within >= 0.99 and lost == 0 and equal,
        })
    return {"per_variant": per, "rows": rows}
