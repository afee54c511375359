// Tiny TCP probes that lab tests spawn inside lab hosts (node tcp-tool.mjs MODE ...).
// Servers print "ready" once listening; clients print one JSON line and exit.
//   bulk-serve PORT BYTES   send BYTES to each connection, then close it
//   bulk-fetch IP PORT      count what arrives: {"bytes", "elapsedMs"} (first byte to end)
//   echo-serve PORT         echo everything back
//   rtt IP PORT COUNT       COUNT one-byte round trips: {"rttMs": [...]}
import { connect, createServer } from 'node:net';

const [mode, ...args] = process.argv.slice(2);
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

function listen(server, port) {
  server.listen(Number(port), '0.0.0.0', () => process.stdout.write('ready\n'));
}

if (mode === 'bulk-serve') {
  const [port, bytes] = args;
  listen(
    createServer((socket) => {
      let left = Number(bytes);
      const pump = () => {
        while (left > 0) {
          const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
          left -= piece.length;
          if (!socket.write(piece)) return socket.once('drain', pump);
        }
        socket.end();
      };
      socket.on('error', () => socket.destroy());
      pump();
    }),
    port,
  );
} else if (mode === 'bulk-fetch') {
  const [ip, port] = args;
  let bytes = 0;
  let firstByteAt;
  const socket = connect(Number(port), ip);
  socket.on('data', (data) => {
    firstByteAt ??= performance.now();
    bytes += data.length;
  });
  socket.on('end', () => {
    process.stdout.write(`${JSON.stringify({ bytes, elapsedMs: performance.now() - (firstByteAt ?? performance.now()) })}\n`);
    process.exit(0);
  });
  socket.on('error', (error) => {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  });
} else if (mode === 'echo-serve') {
  listen(
    createServer((socket) => {
      socket.on('error', () => socket.destroy());
      socket.pipe(socket);
    }),
    args[0],
  );
} else if (mode === 'rtt') {
  const [ip, port, count] = args;
  const rttMs = [];
  const socket = connect(Number(port), ip);
  socket.setNoDelay(true);
  let sentAt = 0;
  const ping = () => {
    sentAt = performance.now();
    socket.write('x');
  };
  socket.on('connect', ping);
  socket.on('data', () => {
    rttMs.push(performance.now() - sentAt);
    if (rttMs.length < Number(count)) return ping();
    process.stdout.write(`${JSON.stringify({ rttMs })}\n`);
    process.exit(0);
  });
  socket.on('error', (error) => {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
