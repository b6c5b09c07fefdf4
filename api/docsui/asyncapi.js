// Renders the AsyncAPI document as tables: served by the vibegrapher binary,
// no request leaves the server's origin.
(async function () {
  const main = document.getElementById("doc");
  const doc = await (await fetch("../asyncapi.json")).json();
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const typeOf = (s) => {
    if (!s) return "";
    if (s.oneOf) return s.oneOf.map(typeOf).join(" | ");
    let t = s.type || "any";
    if (t === "array") t = typeOf(s.items) + "[]";
    if (s.enum) t += " (" + s.enum.join(", ") + ")";
    if (s.format) t += " <" + s.format + ">";
    return s.nullable ? t + " | null" : t;
  };
  const rows = (s, prefix) => {
    if (!s) return "";
    if (s.oneOf) return s.oneOf.map((o) => rows(o, prefix)).join("");
    const req = new Set(s.required || []);
    return Object.keys(s.properties || {}).sort().map((k) => {
      const p = s.properties[k];
      const name = prefix + k;
      const nested = p.type === "object" ? rows(p, name + ".") : p.type === "array" && p.items && p.items.type === "object" ? rows(p.items, name + "[].") : "";
      return "<tr><td>" + esc(name) + (req.has(k) ? "" : ' <span class="opt">optional</span>') + "</td><td>" + esc(typeOf(p)) + "</td><td>" + esc(p.description) + "</td></tr>" + nested;
    }).join("");
  };
  const message = (name) => doc.components.messages[name];
  let html = "<h1>" + esc(doc.info.title) + " " + esc(doc.info.version) + "</h1><p>" + esc(doc.info.description) + "</p>";
  const server = Object.values(doc.servers)[0];
  html += "<h2>Handshake</h2><table><tr><th>field</th><th>type</th><th>meaning</th></tr>" +
    rows(server["x-socketio-auth"], "auth.") + rows(server["x-socketio-query"], "query.") + "</table>";
  for (const [id, ch] of Object.entries(doc.channels)) {
    html += "<h2>" + esc(ch.title) + (ch.address ? " <code>" + esc(ch.address) + "</code>" : "") + "</h2><p>" + esc(ch.description) + "</p>";
    for (const ref of Object.values(ch.messages)) {
      const name = ref.$ref.split("/").pop();
      const op = Object.values(doc.operations).find((o) => o.channel.$ref === "#/channels/" + id && o.messages.some((m) => m.$ref.endsWith("/" + name)));
      const m = message(name);
      html += "<h3>" + (op ? '<span class="dir ' + op.action + '">' + (op.action === "send" ? "server → client" : "client → server") + "</span>" : "") + esc(name) + "</h3><p>" + esc(m.summary) + "</p>" +
        "<table><tr><th>field</th><th>type</th><th>meaning</th></tr>" + rows(m.payload.schema, "") + "</table>";
    }
  }
  main.innerHTML = html;
})().catch((e) => { document.getElementById("doc").textContent = "Could not load ../asyncapi.json: " + e; });
