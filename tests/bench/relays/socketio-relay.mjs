// A socket.io 4.x signaling relay, the way its documentation writes one:
// a client names itself in the handshake (`?peer=ID`), `join`s a room (and is
// answered `joined`), and `signal {to, data}` reaches `to` as
// `signal {from, data}`. For tests/bench/report; prints "listening PORT".
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http, { transports: ["websocket"], serveClient: false });
io.on("connection", (socket) => {
  const id = String(socket.handshake.query.peer ?? socket.id);
  socket.join(id);
  socket.on("join", (room) => {
    socket.join(String(room));
    socket.to(String(room)).emit("peer-joined", id);
    socket.emit("joined", String(room));
  });
  socket.on("signal", (msg) => {
    if (msg && typeof msg.to === "string") {
      io.to(msg.to).emit("signal", { from: id, data: msg.data });
    }
  });
});
http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`listening ${http.address().port}`);
});
process.on("SIGTERM", () => process.exit(0));
