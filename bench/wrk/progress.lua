-- wrk script: agents' progress reports, PATCH /api/agent/tasks/<id>/ {"progress": n}.
--   wrk -t1 -c8 -d15s -s bench/wrk/progress.lua http://127.0.0.1:PORT -- pairs.txt
-- pairs.txt: one "token task_id" line per agent (bench/dbtool.py agents). Each request takes
-- the next pair, so every connection reports for several agents in turn.
local agents = {}
local counter = 0
ok, failed = 0, 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local token, id = line:match("(%S+) (%d+)")
    table.insert(agents, {token, id})
  end
end

function request()
  counter = counter + 1
  local agent = agents[(counter % #agents) + 1]
  local body = string.format('{"progress": %d}', counter % 100)
  return wrk.format("PATCH", "/api/agent/tasks/" .. agent[2] .. "/",
    {["Authorization"] = "Bearer " .. agent[1], ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else failed = failed + 1 end
end

function done(summary, latency, requests)
  local good, bad = 0, 0
  for _, thread in ipairs(threads) do
    good = good + thread:get("ok")
    bad = bad + thread:get("failed")
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "seconds": %.3f, "ok": %d, "failed": %d, "socket_errors": %d, ' ..
    '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, good, bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
