// Reports one trace with the real Node.js jaeger-client: a server span and its client child with an error
// and a log. `udp HOST:PORT` sends thrift binary to an agent port (Agent.emitBatch, what this client
// always speaks over UDP); `http URL` posts thrift binary Batches to a collector's /api/traces.
// Prints the trace id.
'use strict';

const { initTracer } = require('jaeger-client');

const [mode, target, service] = process.argv.slice(2);
const reporter = { flushIntervalMs: 50 };
if (mode === 'udp') {
  const [host, port] = target.split(':');
  reporter.agentHost = host;
  reporter.agentPort = Number(port);
} else if (mode === 'http') {
  reporter.collectorEndpoint = target;
} else {
  console.error('usage: send_spans.js udp HOST:PORT | http URL  SERVICE');
  process.exit(2);
}
const errors = [];
const tracer = initTracer(
  { serviceName: service, sampler: { type: 'const', param: 1 }, reporter },
  { logger: { info: () => {}, error: (msg) => errors.push(msg) } },
);
const root = tracer.startSpan('GET /checkout');
root.setTag('span.kind', 'server');
root.setTag('http.status_code', 200);
const child = tracer.startSpan('SELECT cart', { childOf: root });
child.setTag('span.kind', 'client');
child.setTag('error', true);
child.log({ event: 'retry', attempt: 2 });
child.finish();
root.finish();
tracer.close(() => {
  if (errors.length) {
    console.error(errors.join('\n'));
    process.exit(1);
  }
  console.log(root.context().traceIdStr);
});
