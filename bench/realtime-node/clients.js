// A share of the load's clients: official socket.io-client 4.8 sockets, one
// connection each, all subscribed to one project.
//
//   TRANSPORT=websocket|polling node clients.js <url> <project_id> <clients> <events>
//
// Prints {"type":"ready"} once every socket is connected and subscribed, then
// {"type":"done", lat_us: [...], missing, dups} once every socket has
// `events` distinct "load" events (or stdin closes: the load gave up), where
// lat_us holds, per received event, the receive time minus the payload's
// sent_at_us (taken by the emitter before it committed or emitted). Exits
// after disconnecting when stdin closes.
const { io } = require("socket.io-client");

const [url, project, n, events] = process.argv.slice(2);
const clients = Number(n);
const want = Number(events);
const transport = process.env.TRANSPORT || "websocket";
const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (msg) => {
  console.error(msg);
  process.exit(1);
};

const sockets = [];
const lat = [];
// With RT_TRACE_DIR set (bench/realtime-node/tail.py): every receive as
// "seq socket sent_at_us received_us", and this process's GCs as
// "gc start_us duration_us kind", written there at the end.
const traceDir = process.env.RT_TRACE_DIR;
const trace = [];
const gcs = [];
if (traceDir) {
  const { PerformanceObserver } = require("perf_hooks");
  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      gcs.push(`gc ${Math.round((performance.timeOrigin + e.startTime) * 1000)} ${Math.round(e.duration * 1000)} ${e.detail ? e.detail.kind : e.kind}`);
  }).observe({ entryTypes: ["gc"] });
}
let dups = 0;
let complete = 0;
let finished = false;

function finish() {
  if (finished) return;
  finished = true;
  let missing = 0;
  for (const s of sockets) missing += want - s.seen.size;
  if (traceDir) {
    const fs = require("fs");
    fs.writeFileSync(`${traceDir}/client-${Date.now()}-${process.pid}.txt`, trace.join("\n") + "\n");
    fs.writeFileSync(`${traceDir}/gc-${Date.now()}-${process.pid}.txt`, gcs.join("\n") + "\n");
  }
  print({ type: "done", lat_us: lat, missing, dups });
}

function open(i) {
  return new Promise((resolve) => {
    const socket = io(url, { transports: [transport], forceNew: true, reconnection: false, timeout: 60000 });
    const entry = { socket, seen: new Set() };
    sockets[i] = entry;
    socket.on("load", (p) => {
      const at = nowMicros();
      if (entry.seen.has(p.seq)) {
        dups++;
        return;
      }
      entry.seen.add(p.seq);
      lat.push(at - p.sent_at_us);
      if (traceDir) trace.push(`${p.seq} ${i} ${p.sent_at_us} ${at}`);
      if (entry.seen.size === want && ++complete === clients) finish();
    });
    socket.on("connect_error", (err) => fail("connect_error: " + err.message));
    socket.on("disconnect", (why) => {
      if (!finished) fail("disconnected: " + why);
    });
    socket.once("connect", async () => {
      let ack;
      try {
        ack = await socket.timeout(60000).emitWithAck("subscribe", { project_id: project });
      } catch (err) {
        fail("subscribe: " + err.message);
      }
      if (!ack || ack.ok !== true) fail("subscribe refused: " + JSON.stringify(ack));
      resolve();
    });
  });
}

(async () => {
  // A few at a time, so 10,000 clients do not all handshake at once.
  const batch = 50;
  for (let i = 0; i < clients; i += batch) {
    const wave = [];
    for (let j = i; j < Math.min(clients, i + batch); j++) wave.push(open(j));
    await Promise.all(wave);
  }
  print({ type: "ready" });
})();

process.stdin.on("data", () => {});
process.stdin.on("end", () => {
  finish();
  finished = true;
  for (const s of sockets) if (s) s.socket.disconnect();
  setTimeout(() => process.exit(0), 100);
});
