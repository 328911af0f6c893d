#!/usr/bin/env node
// A transparent HTTP proxy on 127.0.0.1 that adds `Authorization: Bearer $TODO_MCP_TOKEN` to
// every request it forwards, for clients that cannot send a header themselves (the conformance
// suite's `server` mode has no option for one).
//
//   TODO_MCP_TOKEN=JWT node bearer-proxy.mjs http://127.0.0.1:PORT
//
// Prints `PORT=<port>` on stdout once it listens. Everything else passes unchanged both ways:
// method, path, every header (Host and Origin included: the DNS-rebinding checks see what the
// client sent), bodies and streamed responses (server-sent events) as they come, status codes,
// and the closing of a stream by either side. Runs until killed.

import http from 'node:http';

const upstream = new URL(process.argv[2] ?? '');
const token = process.env.TODO_MCP_TOKEN;
if (!token || upstream.protocol !== 'http:') {
  process.stderr.write('usage: TODO_MCP_TOKEN=JWT bearer-proxy.mjs http://HOST:PORT\n');
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true });

const server = http.createServer((req, res) => {
  // rawHeaders keeps names, order and duplicates as the client sent them.
  const headers = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i].toLowerCase() !== 'authorization') headers.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  headers.push('Authorization', `Bearer ${token}`);
  const out = http.request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent, setHost: false },
    (up) => {
      const back = [];
      for (let i = 0; i < up.rawHeaders.length; i += 2) back.push(up.rawHeaders[i], up.rawHeaders[i + 1]);
      res.writeHead(up.statusCode, up.statusMessage, back);
      res.flushHeaders();
      up.pipe(res);
      up.on('aborted', () => res.destroy());
      res.on('close', () => up.destroy());
    },
  );
  out.on('error', (e) => {
    if (!res.headersSent) {
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end(`bearer-proxy: ${e.message}\n`);
    } else res.destroy();
  });
  req.on('aborted', () => out.destroy());
  req.pipe(out);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT=${server.address().port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
