// The least a signaling relay can be: `ws` connections named by `?id=`,
// greeted with `{"type":"open"}`; `{to, data}` reaches `to` as
// `{from, data}`. For tests/bench/report; prints "listening PORT".
import { WebSocketServer } from "ws";

const peers = new Map();
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.env.PORT ?? 0) });
wss.on("connection", (ws, req) => {
  const id = new URL(req.url, "http://relay").searchParams.get("id") ?? "";
  peers.set(id, ws);
  ws.on("message", (raw) => {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    const to = peers.get(msg?.to);
    if (to) to.send(JSON.stringify({ from: id, data: msg.data }));
  });
  ws.on("close", () => {
    if (peers.get(id) === ws) peers.delete(id);
  });
  ws.send('{"type":"open"}');
});
wss.on("listening", () => console.log(`listening ${wss.address().port}`));
process.on("SIGTERM", () => process.exit(0));
