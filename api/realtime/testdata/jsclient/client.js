// A frontend's view of the realtime server, with the official socket.io-client.
//
//   node client.js <url> <project_id> <transport> [since]
//
// transport: "websocket" (transports: ['websocket'], as the frontend uses),
// "polling" (polling only) or "default" (polling, then the upgrade to
// websocket). It subscribes to the project, prints one JSON line
// {"type":"ready", ack, transport} once subscribed (and upgraded, for
// "default"), then prints every event as {"type":"event", name, payload,
// transport} until it has seen `count` events (env COUNT, default 1) and
// exits 0. Errors go to stderr with exit code 1.
const { io } = require("socket.io-client");

const [url, projectId, transport = "websocket", since] = process.argv.slice(2);
const want = Number(process.env.COUNT || "1");
if (!url || !projectId) {
  console.error("usage: node client.js <url> <project_id> <transport> [since]");
  process.exit(2);
}

const opts = { reconnection: false, timeout: 10000 };
if (transport === "websocket") opts.transports = ["websocket"];
if (transport === "polling") opts.transports = ["polling"];
if (process.env.TOKEN) opts.auth = { token: process.env.TOKEN };

const socket = io(url, opts);
const fail = (msg) => {
  console.error(msg);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 20000).unref();
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const current = () => socket.io.engine.transport.name;

let seen = 0;
socket.onAny((name, payload) => {
  if (name === "heartbeat") return;
  if (name === "error") fail("error event: " + JSON.stringify(payload));
  print({ type: "event", name, payload, transport: current() });
  if (++seen >= want) {
    socket.disconnect();
    process.exit(0);
  }
});
socket.on("connect_error", (err) => fail("connect_error: " + err.message));

socket.on("connect", async () => {
  const req = { project_id: projectId };
  if (since !== undefined) req.since = Number(since);
  let ack;
  try {
    ack = await socket.timeout(10000).emitWithAck("subscribe", req);
  } catch (err) {
    fail("subscribe: " + err.message);
  }
  if (!ack || ack.ok !== true) fail("subscribe refused: " + JSON.stringify(ack));
  if (transport === "default" && current() !== "websocket") {
    await new Promise((resolve) => socket.io.engine.once("upgrade", resolve));
  }
  print({ type: "ready", ack, transport: current() });
});
