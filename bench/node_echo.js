// node_echo.js - echo server on node's net module, for bench/run.sh.
//   node bench/node_echo.js PORT      serves 127.0.0.1:PORT until killed
// socket.pipe(socket) echoes every chunk and handles backpressure (pauses
// reading while the write side is above its high-water mark).
'use strict';
const net = require('net');

const port = Number(process.argv[2]);
if (!Number.isInteger(port)) {
  console.error('usage: node node_echo.js PORT');
  process.exit(2);
}

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
});
server.on('error', (err) => {
  console.error('node_echo:', err.message);
  process.exit(1);
});
server.listen({ host: '127.0.0.1', port, backlog: 1024 });
