// The official Node.js socket.io server, as the reference for vibegrapher's
// realtime role (vibegrapher-load realtime -servers ours,node).
//
//   node server.js <port>
//
// It speaks the part of the protocol the load uses: a client emits
// `subscribe` {project_id} with an ack and joins room "project_<id>".
// POST /emit?project=<id>&count=<n>&every_ms=<ms>&pad=<bytes> then emits
// `count` events named "load" to that room from memory, one every `every_ms`
// (0: all in one go), each {i, sent_at_us, trace_id, pad, seq, project_id}:
// the same payload the load commits to vibegrapher's outbox. GET /healthz
// answers 200.
const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
if (!port) {
  console.error("usage: node server.js <port>");
  process.exit(2);
}

let seq = 0;

// Each event carries the instant it was due (start + i * everyMs; start for
// all of a burst), as the load's writer for vibegrapher does: latency counts
// from then, so a server still busy with the last emit when the next is due
// has that wait counted, as vibegrapher's has when its outbox runs ahead.
function emitAll(project, count, everyMs, pad) {
  const room = "project_" + project;
  const start = performance.now();
  const one = (i) =>
    io.to(room).emit("load", {
      i,
      pad,
      sent_at_us: Math.round((performance.timeOrigin + start + i * Math.max(everyMs, 0)) * 1000),
      trace_id: "load",
      seq: ++seq,
      project_id: project,
    });
  if (everyMs <= 0) {
    for (let i = 0; i < count; i++) one(i);
    return;
  }
  let i = 0;
  const tick = () => {
    one(i++);
    if (i < count) setTimeout(tick, Math.max(0, start + i * everyMs - performance.now()));
  };
  tick();
}

const httpServer = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname === "/healthz") {
    res.end("ok");
    return;
  }
  if (req.method === "POST" && url.pathname === "/emit") {
    const q = url.searchParams;
    res.writeHead(202);
    res.end();
    emitAll(q.get("project"), Number(q.get("count")), Number(q.get("every_ms")), "x".repeat(Number(q.get("pad"))));
    return;
  }
  res.writeHead(404);
  res.end();
});

const io = new Server(httpServer, { serveClient: false, cors: { origin: "*", credentials: true } });
io.on("connection", (socket) => {
  socket.on("subscribe", (req, ack) => {
    const project = typeof req === "string" ? req : req && req.project_id;
    socket.join("project_" + project);
    if (typeof ack === "function") ack({ ok: true, project_id: project, replayed: 0 });
  });
});

httpServer.listen(port, "127.0.0.1", () => console.log(JSON.stringify({ type: "listening", port, pid: process.pid })));
process.on("SIGTERM", () => process.exit(0));
