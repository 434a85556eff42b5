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

from bench.common import cpu_seconds, percentile, run_tool
from bench.scenarios import each_config, median_of, row, serving, summarizer, warn

NAME = "storm"
TITLE = "Reconnect storm after a restart"


async def restart(project, fleet, newest=False):
    """The storm, with `fleet` connected: SIGTERM (the hub closes every socket with 1012), 50
    changes committed while the server is down (an external writer, warmed up, starts at the
    SIGTERM), the same command again on the same port, every client's first sync after it;
    then 20 more changes, which every client must apply. `newest`: the changes go to the
    newest tasks. Returns the moments, the new process's CPU during the storm and each
    client's resync time (seconds after the SIGTERM; `late`: how many had none when the wait
    for them ended)."""
    server = project.server
    t_kill = time.monotonic() + 2.0
    writer = asyncio.ensure_future(run_tool(
        ["write", "--n", 50, "--rate", 0, *(["--newest"] if newest else []), "--start-at", t_kill], project.writer_env))
    await asyncio.sleep(max(0.0, t_kill - time.monotonic()))
    fleet.mark = t_kill
    await server.aterminate()
    t_down = time.monotonic()
    await writer
    new = await project.astart(port=server.port)
    t_ready = time.monotonic()
    c0 = cpu_seconds(new.pid)
    done = await fleet.wait(lambda: all(c.resynced_at is not None and c.synced for c in fleet.clients), 40, 0.05)
    t_done = time.monotonic()
    storm_cpu = cpu_seconds(new.pid) - c0
    late = sum(1 for c in fleet.clients if c.resynced_at is None)
    answer = await project.write(20, rate=50, newest=newest)
    await fleet.reach(answer["stamps"][-1][0], 30)
    return {"t_kill": t_kill, "t_down": t_down, "t_ready": t_ready, "t_done": t_done, "done": done, "late": late,
            "storm_cpu": storm_cpu, "resync": [c.resynced_at - t_kill for c in fleet.clients if c.resynced_at is not None]}


async def measure(ctx, config):
    clients = ctx.size(2000, 500)
    result = {"config": config, "clients": clients}
    async with serving(ctx, config, clients, "apply", reconnect=True) as (project, fleet):
        await project.write(20, rate=50)
        head = (await project.state())["head"]
        await fleet.wait(lambda: all(c.last == head for c in fleet.clients), 30)
        old_pid = project.server.pid
        storm = await restart(project, fleet)
        t_kill, t_ready, resync = storm["t_kill"], storm["t_ready"], storm["resync"]
        if not storm["done"]:
            warn(f"storm {config}: {storm['late']} clients not resynced")
        truth = await project.state()
        expected = (truth["tasks"], truth["agents"])
        equal = sum(1 for c in fleet.clients if c.versions() == expected)
        resync_ready = [c.resynced_at - t_ready for c in fleet.clients if c.resynced_at is not None]
        codes = {}
        for c in fleet.clients:
            for code in c.close_codes:
                codes[str(code)] = codes.get(str(code), 0) + 1
        result.update(
            old_pid=old_pid, shutdown_s=storm["t_down"] - t_kill, restart_s=t_ready - t_kill,
            resynced=len(resync), lost=clients - len(resync),
            within_10s_of_kill=sum(1 for v in resync if v <= 10.0) / clients,
            within_10s_of_ready=sum(1 for v in resync_ready if v <= 10.0) / clients,
            p50_s=percentile(resync, 50), p99_s=percentile(resync, 99), max_s=max(resync) if resync else None,
            p99_from_ready_s=percentile(resync_ready, 99),
            storm_s=storm["t_done"] - t_ready, storm_cpu_s=storm["storm_cpu"],
            equal=equal, all_equal=equal == clients,
            duplicates_ignored=sum(c.duplicates for c in fleet.clients),
            gaps=sum(c.gaps for c in fleet.clients),
            resets=sum(c.resets for c in fleet.clients) - clients,
            connect_errors=sum(c.connect_errors for c in fleet.clients), close_codes=codes,
            error_kinds=fleet.error_kinds,
            resync_quantiles=[percentile(resync, q) for q in [i / 4 for i in range(401)]] if resync else [],
        )
    return result


def describe(r):
    return (f"restart {r['restart_s']:.1f}s, resynced {r['resynced']}/{r['clients']}, "
            f"{r['within_10s_of_kill']:.1%} within 10 s of SIGTERM (p99 {r['p99_s']:.1f}s), "
            f"equal {r['equal']}, resets {r['resets']}, refused {r['connect_errors']} {r['error_kinds']}, codes {r['close_codes']}")


run = each_config(measure, describe)


def summarize_variant(label, rs):
    entry = {key: median_of(rs, key) for key in ("within_10s_of_kill", "within_10s_of_ready", "p50_s", "p99_s",
                                                 "p99_from_ready_s", "restart_s")}
    entry.update(lost=sum(r["lost"] for r in rs), all_equal=all(r["all_equal"] for r in rs),
                 resets=median_of(rs, "resets"), clients=rs[0]["clients"])
    within, p99, lost, equal = entry["within_10s_of_kill"], entry["p99_s"], entry["lost"], entry["all_equal"]
    return entry, [row(
        f"reconnect storm, {rs[0]['clients']:,} clients", label, "99% resynced within 10 s, none lost or duplicated",
        f"{within:.1%} within 10 s of SIGTERM (p99 {p99:.1f} s, restart {entry['restart_s']:.1f} s), "
        f"lost {lost}, {'all' if equal else 'NOT all'} equal",
        p99 / 10.0, within >= 0.99 and lost == 0 and equal)]


summarize = summarizer(summarize_variant)
