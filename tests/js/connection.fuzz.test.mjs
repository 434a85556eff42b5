// Drive the Connection state machine with long random sequences of network, page and user
// events and check its invariants after every step. A failure names its seed and step.
import assert from "node:assert/strict";
import { test } from "node:test";
import { harness, prng, syncFrame, syncParts, task, upsert } from "./fakes.mjs";

const CODES = [1000, 1001, 1006, 1009, 1011, 1012, 4000, 4008, 4013, 4029, 4030, 4499, 4500, 4501, 4503, 4509, 4510, 4999, 1002, 3000];
const TERMINAL = new Set([1009, 4500, 4501, 4503, 4509, 4510, 4999]);
const STATES = new Set(["connecting", "open", "waiting", "offline", "stopped"]);

/**
 * Weighted actions; each returns a label for the failure message. Only "sync", "part n/n"
 * (the last part of a sync in parts) and "event(s)" may move the store.
 */
function actions(h, random, stale) {
  const pick = (list) => list[Math.floor(random() * list.length)];
  const ws = () => h.socket;
  const lastSeq = () => h.store.last ?? 0;
  let parts = { socket: null, frames: [] }; // the multi-part sync being "sent" on one socket
  const nextPart = () => {
    if (ws()?.readyState !== 1) return "part (closed)";
    if (parts.socket !== ws() || parts.frames.length === 0) {
      const n = 2 + Math.floor(random() * 3);
      const rows = Array.from({ length: 1 + Math.floor(random() * 6) }, (_, i) => task(1 + i, lastSeq() + 1));
      const reset = random() < 0.5;
      const deleted = { tasks: reset ? [] : [7, 8].filter(() => random() < 0.5), agents: [] };
      parts = { socket: ws(), frames: syncParts({ seq: lastSeq() + Math.floor(random() * 3), reset, tasks: rows, deleted }, n) };
    }
    let frame;
    for (let burst = 1 + Math.floor(random() * 3); burst > 0 && parts.frames.length; burst--) {
      frame = parts.frames.shift();
      const roll = random();
      if (roll < 0.04) frame = { ...frame, seq: frame.seq + 1 }; // a part that does not fit
      else if (roll < 0.08 && parts.frames.length) frame = parts.frames.shift(); // one went missing
      if (roll > 0.9) ws().receive({ type: "ping", id: 0, seq: lastSeq() + 1 }); // allowed in between
      ws().receive(frame);
    }
    return `part ${frame.part}/${frame.parts}`;
  };
  return [
    [6, nextPart],
    [6, () => { if (ws()?.readyState === 0) ws().open(); return "open"; }],
    [4, () => {
      if (ws()?.readyState === 1) ws().receive(syncFrame({ seq: lastSeq() + Math.floor(random() * 3), reset: random() < 0.5 }));
      return "sync";
    }],
    [6, () => {
      const seq = lastSeq() + (random() < 0.8 ? 1 : Math.floor(random() * 5) - 1);
      if (ws()?.readyState === 1) ws().receive(upsert(seq, task(1 + Math.floor(random() * 5))));
      return `event ${seq}`;
    }],
    [2, () => {
      const first = lastSeq() + 1;
      if (ws()?.readyState === 1) ws().receive({ type: "events", items: [upsert(first, task(1)), upsert(first + 1 + (random() < 0.3 ? 1 : 0), task(2))] });
      return "events";
    }],
    [3, () => {
      if (ws()?.readyState === 1) ws().receive({ type: "ping", id: Math.floor(random() * 100), seq: lastSeq() + Math.floor(random() * 2) });
      return "ping";
    }],
    [2, () => {
      const ping = ws()?.sentOfType("ping").at(-1);
      if (ping && ws().readyState === 1) ws().receive({ type: "pong", id: ping.id });
      return "pong";
    }],
    [4, () => {
      const code = random() < 0.15 ? pick([...TERMINAL]) : pick(CODES.filter((c) => !TERMINAL.has(c)));
      if (ws() && ws().readyState < 3) ws().serverClose(code);
      return `close ${code}`;
    }],
    [3, () => { if (ws() && ws().readyState < 3) ws().fail(); return "error"; }],
    [1, () => { h.win.navigator.onLine = false; h.win.dispatch("offline"); return "offline"; }],
    [1, () => { h.win.navigator.onLine = true; h.win.dispatch("online"); return "online"; }],
    [2, () => { h.hide(); return "hidden"; }],
    [2, () => { h.show(); return "visible"; }],
    [1, () => { h.win.dispatch("focus"); return "focus"; }],
    [1, () => { h.win.dispatch("pageshow", { persisted: random() < 0.5 }); return "pageshow"; }],
    [1, () => { h.conn.retryNow(); return "retryNow"; }],
    [0.3, () => { h.conn.stop(); return "stop"; }],
    [0.5, () => { h.conn.start(); return "start"; }],
    [2, () => { h.conn.send({ type: "ping", id: -1 }); return "send"; }],
    [8, () => { const ms = Math.floor(random() * 40000); h.clock.advance(ms); return `advance ${ms}`; }],
    [2, () => { const ms = Math.floor(random() * 90000); h.clock.jump(ms); h.clock.runDue(); return `late ${ms}`; }],
    [1, () => { h.clock.fireNext(); return "early timer"; }],
    [2, () => {
      // A callback captured from an older socket fires after it was replaced.
      const replaced = stale.filter((x) => x.socket !== ws());
      if (!replaced.length) return "stale (none)";
      const kind = pick(["onopen", "onmessage", "onerror", "onclose"]);
      const before = [JSON.stringify(h.conn.status), h.net.sockets.length, h.clock.pending];
      pick(replaced)[kind]({ type: kind.slice(2), code: pick(CODES), data: JSON.stringify(upsert(lastSeq() + 1, task(9))) });
      assert.deepEqual([JSON.stringify(h.conn.status), h.net.sockets.length, h.clock.pending], before, `stale ${kind} acted`);
      return `stale ${kind}`;
    }],
  ];
}

function run(seed, steps) {
  const random = prng(seed);
  const h = harness({ random });
  const stale = []; // handler snapshots of every socket, taken while it was current
  const table = actions(h, random, stale);
  const total = table.reduce((sum, [w]) => sum + w, 0);
  const choose = () => {
    let r = random() * total;
    for (const [w, act] of table) if ((r -= w) < 0) return act;
    return table.at(-1)[1];
  };
  const subscribes = new Map(); // socket -> number of whole syncs applied from it
  const applySync = h.store.applySync.bind(h.store);
  h.store.applySync = (frame) => {
    assert.equal(frame.part ?? frame.parts, undefined, "only whole syncs reach the store");
    subscribes.set(h.socket, (subscribes.get(h.socket) ?? 0) + 1);
    applySync(frame);
  };
  h.conn.start();
  for (let step = 0; step < steps; step++) {
    const socketsBefore = h.net.sockets.length;
    const stateBefore = h.state;
    const before = [h.store.epoch, h.store.last, h.store.tasks.size];
    const applied = subscribes.get(h.socket) ?? 0;
    const label = choose()();
    const where = `seed ${seed} step ${step} (${label}), state ${h.state}`;
    const s = h.conn.status;

    // Only a whole sync or an event moves the store; a socket lost mid-sync leaves it be.
    const moves = label === "sync" || label.startsWith("event") || /^part (\d+)\/\1$/.test(label);
    if (!moves) assert.deepEqual([h.store.epoch, h.store.last, h.store.tasks.size], before, `${where}: the store moved`);
    if (/^part (\d+)\/\1$/.test(label) && (subscribes.get(h.socket) ?? 0) > applied) h.wholeFromParts = (h.wholeFromParts ?? 0) + 1;

    assert.ok(STATES.has(s.state), where);
    assert.ok(h.clock.pending <= 1, `${where}: ${h.clock.pending} timers pending`);
    assert.ok(Number.isInteger(s.attempt) && s.attempt >= 0, where);
    const live = h.net.live;
    assert.ok(live.length <= 1, `${where}: ${live.length} live sockets`);
    if (s.state === "connecting" || s.state === "open") {
      assert.equal(live.length, 1, where);
      assert.equal(live[0], h.socket, where);
      assert.equal(h.clock.pending, 1, `${where}: a deadline must be armed`);
    } else {
      assert.equal(live.length, 0, where);
    }
    if (s.state === "waiting") {
      assert.equal(h.clock.pending, 1, where);
      assert.ok(Number.isFinite(s.retryAt) && s.retryAt >= h.clock.now - 90000, where);
    } else {
      assert.equal(s.retryAt, null, where);
    }
    if (s.state === "stopped" || s.state === "offline") assert.equal(h.clock.pending, 0, where);
    if (stateBefore === "stopped" && !["retryNow", "start"].includes(label)) {
      assert.equal(h.net.sockets.length, socketsBefore, `${where}: a stopped client reconnected`);
    }
    if (stateBefore === "offline" && ["advance", "late", "early timer", "focus", "send"].some((a) => label.startsWith(a))) {
      assert.equal(h.net.sockets.length, socketsBefore, `${where}: an offline client retried`);
    }
    // Never a second subscribe while one is outstanding on the same socket.
    for (const ws of h.net.sockets) {
      const syncs = subscribes.get(ws) ?? 0;
      assert.ok(ws.sentOfType("subscribe").length <= syncs + 1, `${where}: two subscribes outstanding`);
    }
    if (h.socket?.attached && !stale.some((x) => x.socket === h.socket)) {
      const { onopen, onmessage, onerror, onclose } = h.socket;
      stale.push({ socket: h.socket, onopen, onmessage, onerror, onclose });
    }
  }
  return h;
}

test("fuzz: one timer, one live socket, no retry while stopped/offline, one subscribe in flight, syncs whole", () => {
  let sockets = 0;
  let multipart = 0;
  let whole = 0;
  const states = new Set();
  for (let seed = 1; seed <= 40; seed++) {
    const h = run(seed, 1500);
    sockets += h.net.sockets.length;
    multipart += h.logger.lines.filter(([, msg]) => /dropped the parts|without part 1/.test(msg)).length;
    whole += h.wholeFromParts ?? 0;
    for (const s of h.statuses) states.add(s.state);
  }
  assert.ok(multipart > 50, `only ${multipart} broken or stray parts seen`);
  assert.ok(whole > 80, `only ${whole} syncs in parts were applied`);
  // The run must actually have visited the whole machine, or it proves little.
  assert.deepEqual([...states].sort(), ["connecting", "offline", "open", "stopped", "waiting"]);
  assert.ok(sockets > 1000, `only ${sockets} sockets opened`);
});

// ---- protocol v2: a view, its ranges, view changes and the health probe -------------------

const VIEWS = [
  { status: ["failed"], agent: null, q: null, limit: 50, current: true },
  { status: null, agent: 3, q: null, limit: 200, current: true },
  { status: null, agent: null, q: "deploy", limit: 1000, current: true },
];

async function runViews(seed, steps) {
  const random = prng(seed);
  const requests = [];
  let fetched = 0;
  const h = harness({
    random, view: VIEWS[0], probeUrl: "http://test.invalid/healthz",
    fetch: () => {
      fetched += 1;
      return new Promise((resolve, reject) => requests.push({ resolve, reject }));
    },
  });
  const pick = (list) => list[Math.floor(random() * list.length)];
  const ws = () => h.socket;
  const open = () => ws()?.readyState === 1;
  const lastSeq = () => h.store.last ?? 0;
  const delivered = new Map(); // socket -> whole syncs it delivered (applied or dropped)
  const deliver = (frame) => {
    ws().receive(frame);
    if (frame.part === frame.parts) delivered.set(ws(), (delivered.get(ws()) ?? 0) + 1);
  };
  const sync = () => syncFrame({
    seq: lastSeq() + Math.floor(random() * 3), reset: random() < 0.3, view: h.conn.status.view ?? VIEWS[0],
    counts: { matched: 1 }, current: [task(90, 1, { status: "running" })], tasks: [task(1 + Math.floor(random() * 5), lastSeq() + 1)],
  });
  const table = [
    [6, () => { if (ws()?.readyState === 0) ws().open(); return "open"; }],
    [4, () => { if (open()) deliver(sync()); return "sync"; }],
    [2, () => {
      if (!open()) return "parts (closed)";
      const frames = syncParts(sync(), 2 + Math.floor(random() * 2));
      for (const frame of frames) deliver(frame);
      return "parts";
    }],
    [10, () => {
      const from = lastSeq() + (random() < 0.8 ? 1 : Math.floor(random() * 4) - 1);
      const to = from + Math.floor(random() * 3);
      const items = random() < 0.5 ? [] : [{ type: "event", seq: to, entity: "task", op: "upsert", data: task(1 + Math.floor(random() * 5), to) }];
      if (open()) ws().receive({ type: "events", from, to, items, counts: { matched: to } });
      return `range ${from}-${to}`;
    }],
    [3, () => { if (open()) ws().receive({ type: "ping", id: 1, seq: lastSeq() + Math.floor(random() * 2), epoch: "e1" }); return "ping"; }],
    [3, () => { h.conn.setView(pick(VIEWS)); return "setView"; }],
    [1, () => {
      if (!open()) return "bad_view (closed)";
      ws().receive({ type: "error", code: "bad_view", message: "no" }); // an answer too: nothing was built
      delivered.set(ws(), (delivered.get(ws()) ?? 0) + 1);
      return "bad_view";
    }],
    [4, () => {
      const code = pick([1000, 1006, 1012, 4008, 4013, 4030, 1012]);
      if (ws() && ws().readyState < 3) ws().serverClose(code);
      return `close ${code}`;
    }],
    [3, () => {
      const request = requests.shift();
      if (!request) return "probe (none)";
      const roll = random();
      if (roll < 0.4) request.resolve({ ok: true });
      else if (roll < 0.8) request.resolve({ ok: false });
      else request.reject(new TypeError("Failed to fetch"));
      return "probe answer";
    }],
    [2, () => { if (random() < 0.5) h.hide(); else h.show(); return "visibility"; }],
    [0.5, () => { h.conn.start(); return "start"; }],
    [0.3, () => { h.conn.stop(); return "stop"; }],
    [8, () => { const ms = Math.floor(random() * 8000); h.clock.advance(ms); return `advance ${ms}`; }],
  ];
  const total = table.reduce((sum, [w]) => sum + w, 0);
  const choose = () => {
    let r = random() * total;
    for (const [w, act] of table) if ((r -= w) < 0) return act;
    return table.at(-1)[1];
  };
  h.conn.start();
  let applied = 0;
  for (let step = 0; step < steps; step++) {
    const before = [h.store.epoch, h.store.last];
    // A view asked for on a live link whose sync is not in: that socket still carries the old one.
    const socket = ws();
    const changing = h.state === "open" && JSON.stringify(h.conn.status.view) !== JSON.stringify(h.store.view);
    const label = choose()();
    await new Promise((r) => setImmediate(r)); // let probe answers land
    const where = `views seed ${seed} step ${step} (${label}), state ${h.state}`;
    const s = h.conn.status;
    const moved = h.store.last !== before[1] || h.store.epoch !== before[0];
    if (moved) applied += 1;
    if (moved) assert.ok(["sync", "parts"].includes(label) || label.startsWith("range"), `${where}: the store moved`);
    if (moved && label.startsWith("range") && ws() === socket) assert.ok(!changing, `${where}: a range of the old view was applied`);
    assert.ok(h.clock.pending <= 1, `${where}: ${h.clock.pending} timers pending`);
    assert.ok(h.net.live.length <= 1, where);
    if (s.state === "waiting") assert.equal(h.clock.pending, 1, where);
    if (s.state === "stopped" || s.state === "offline") assert.equal(h.clock.pending, 0, where);
    for (const socket of h.net.sockets) {
      assert.ok(socket.sentOfType("subscribe").length <= (delivered.get(socket) ?? 0) + 1, `${where}: two subscribes outstanding`);
      for (const frame of socket.sentOfType("subscribe")) assert.ok(frame.view, `${where}: a subscribe without the view`);
    }
  }
  return { h, applied, fetched };
}

test("fuzz with a view: one timer, one socket, one subscribe in flight, no range of an old view applied", async () => {
  let applied = 0;
  let probes = 0;
  const states = new Set();
  for (let seed = 1; seed <= 25; seed++) {
    const { h, applied: n, fetched } = await runViews(seed, 800);
    applied += n;
    probes += fetched;
    for (const s of h.statuses) states.add(s.state);
  }
  assert.ok(applied > 500, `only ${applied} frames moved the store`);
  assert.ok(probes > 100, `only ${probes} health probes`);
  assert.ok(states.has("waiting") && states.has("open") && states.has("stopped"), [...states].join());
});
