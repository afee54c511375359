// UDP helper for the lab's NAT tests; runs inside a lab host.
//   echo PORT                     answer every datagram with "<sender ip>:<sender port>"; prints "ready"
//   probe LOCALPORT HOST:PORT...  from one local port, ask each echo server what it saw; prints one line each
//   listen PORT MS [HOST:PORT]    (first send one datagram from PORT to HOST:PORT) print every datagram received within MS ms, then exit
//   send HOST:PORT                send one datagram
//   burst HOST:PORT N             send N numbered datagrams, 1 ms apart
import { createSocket } from 'node:dgram';

const [mode, ...args] = process.argv.slice(2);
const socket = createSocket('udp4');
const target = (text) => {
  const [host, port] = text.split(':');
  return { host, port: Number(port) };
};

if (mode === 'echo') {
  socket.on('message', (_data, from) => socket.send(`${from.address}:${from.port}`, from.port, from.address));
  socket.bind(Number(args[0]), () => console.log('ready'));
} else if (mode === 'probe') {
  const [localPort, ...servers] = args;
  socket.bind(Number(localPort), async () => {
    for (const server of servers) {
      const { host, port } = target(server);
      const seen = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve('timeout'), 2000);
        socket.once('message', (data) => {
          clearTimeout(timer);
          resolve(data.toString());
        });
        socket.send('probe', port, host);
      });
      console.log(`${server} saw ${seen}`);
    }
    socket.close();
  });
} else if (mode === 'listen') {
  socket.on('message', (data, from) => console.log(`got ${data.toString()} from ${from.address}:${from.port}`));
  socket.bind(Number(args[0]), () => {
    const ready = () => {
      console.log('ready');
      setTimeout(() => socket.close(), Number(args[1]));
    };
    if (args[2] === undefined) return ready();
    const { host, port } = target(args[2]);
    socket.send('out', port, host, ready);
  });
} else if (mode === 'send') {
  const { host, port } = target(args[0]);
  socket.send('hello', port, host, () => socket.close());
} else if (mode === 'burst') {
  const { host, port } = target(args[0]);
  const count = Number(args[1]);
  let sent = 0;
  const next = () => {
    if (sent === count) return socket.close();
    socket.send(String(sent++), port, host, () => setTimeout(next, 1));
  };
  next();
} else {
  console.error(`udp-tool: unknown mode ${mode}`);
  process.exit(2);
}
