// driver.js - the real OpenTelemetry JS OTLP/HTTP exporters against sentryq, for
// test/integration/test_otlp.py.
//
// Usage: node driver.js SIGNAL FORMAT URL MARKER [--gzip] [--header 'Name: value']...
//   SIGNAL  traces (3 spans: a parent and two children) or logs (3 log records)
//   FORMAT  json (exporter-*-otlp-http) or protobuf (exporter-*-otlp-proto)
//   URL     the OTLP endpoint, as Sentry's "direct OTLP" setup gives it:
//           http://127.0.0.1:<port>/api/<n>/integration/otlp/v1/traces (or /logs), with or without
//           the trailing slash, optionally with ?sentry_key=... in the query
//   MARKER  a unique string put in every span name / log body and attribute
//   --gzip  the exporter's compression: 'gzip'
//   --header  an exporter header (X-Sentry-Auth: Sentry sentry_key=...), repeatable
//
// Every export goes through the provider's batch processor and its forceFlush, so one run sends
// one request (a retry after a 429/5xx the exporter decides on would add more). The driver taps
// node's http.request, which the exporters use, and prints one JSON line
//   {"requests": [{"method", "path", "headers", "body_b64", "status", "response_headers",
//                  "response_body"}], "export_error": ...}
// with the body bytes exactly as the exporter wrote them to the socket (after gzip, before the
// chunked framing), and the answer it got, and "export_error": null or what the export failed
// with. Exit 0 once flushed, even when the answer was an error: the test judges the statuses.
'use strict';

const http = require('http');
const Module = require('module');

const taps = [];

// The exporters load http with import('http'): patch the CommonJS export and sync the ESM view.
const realRequest = http.request;
http.request = function tappedRequest(...args) {
  const req = realRequest.apply(this, args);
  const rec = { chunks: [], status: null, response_headers: null, response_chunks: [] };
  taps.push(rec);
  const write = req.write;
  const end = req.end;
  const keep = (chunk, enc) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
    rec.chunks.push(Buffer.from(typeof chunk === 'string' ? Buffer.from(chunk, enc || 'utf8') : chunk));
  };
  req.write = function (chunk, enc, cb) {
    keep(chunk, typeof enc === 'string' ? enc : undefined);
    return write.apply(this, arguments);
  };
  req.end = function (chunk, enc, cb) {
    keep(chunk, typeof enc === 'string' ? enc : undefined);
    rec.method = req.method;
    rec.path = req.path;
    rec.headers = Object.entries(req.getHeaders()).map(([k, v]) => [k, String(v)]);
    return end.apply(this, arguments);
  };
  req.on('response', (res) => {
    rec.status = res.statusCode;
    rec.response_headers = Object.entries(res.headers);
    res.on('data', (c) => rec.response_chunks.push(Buffer.from(c)));
  });
  return req;
};
Module.syncBuiltinESMExports();

const { resourceFromAttributes } = require('@opentelemetry/resources');

function parseArgs(argv) {
  const [signal, format, url, marker, ...rest] = argv;
  const opts = { signal, format, url, marker, gzip: false, headers: {} };
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--gzip') {
      opts.gzip = true;
    } else if (rest[i] === '--header' && i + 1 < rest.length) {
      const h = rest[++i];
      const c = h.indexOf(':');
      if (c <= 0) throw new Error('bad --header ' + h);
      opts.headers[h.slice(0, c).trim()] = h.slice(c + 1).trim();
    } else {
      throw new Error('unknown argument ' + rest[i]);
    }
  }
  if (!['traces', 'logs'].includes(signal) || !['json', 'protobuf'].includes(format) || !url || !marker) {
    console.error("usage: node driver.js traces|logs json|protobuf URL MARKER [--gzip] [--header 'N: v']...");
    process.exit(2);
  }
  return opts;
}

function exporterOptions(o) {
  const e = { url: o.url, headers: o.headers, timeoutMillis: 10000 };
  if (o.gzip) e.compression = 'gzip';
  return e;
}

const resource = (o) => resourceFromAttributes({
  'service.name': 'sentryq-otlp-test',
  'service.version': '1.0.0',
  'sentryq.marker': o.marker,
});

async function sendTraces(o) {
  const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { OTLPTraceExporter } = o.format === 'json' ? require('@opentelemetry/exporter-trace-otlp-http')
    : require('@opentelemetry/exporter-trace-otlp-proto');
  const api = require('@opentelemetry/api');
  const exporter = new OTLPTraceExporter(exporterOptions(o));
  const provider = new BasicTracerProvider({
    resource: resource(o),
    spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 512, scheduledDelayMillis: 60000 })],
  });
  const tracer = provider.getTracer('sentryq-otlp-driver', '1.0.0');
  const parent = tracer.startSpan('checkout ' + o.marker, {
    kind: api.SpanKind.SERVER,
    attributes: { 'http.request.method': 'POST', 'sentryq.marker': o.marker, 'note': 'caf\u00e9 \u4e2d\u6587 \u2603' },
  });
  const ctx = api.trace.setSpan(api.context.active(), parent);
  for (const name of ['db.query', 'payment.charge']) {
    const child = tracer.startSpan(name + ' ' + o.marker, { attributes: { 'sentryq.marker': o.marker } }, ctx);
    child.addEvent('step', { 'sentryq.step': name });
    child.end();
  }
  parent.setStatus({ code: api.SpanStatusCode.OK });
  parent.end();
  return flush(provider);
}

// forceFlush rejects when the export failed (a 429, a 415): that is an answer to report, not a
// driver failure.
async function flush(provider) {
  let error = null;
  try {
    await provider.forceFlush();
  } catch (e) {
    error = String(e && e.message ? e.message : e);
  }
  await provider.shutdown().catch(() => {});
  return error;
}

async function sendLogs(o) {
  const { LoggerProvider, BatchLogRecordProcessor } = require('@opentelemetry/sdk-logs');
  const { OTLPLogExporter } = o.format === 'json' ? require('@opentelemetry/exporter-logs-otlp-http')
    : require('@opentelemetry/exporter-logs-otlp-proto');
  const { SeverityNumber } = require('@opentelemetry/api-logs');
  const exporter = new OTLPLogExporter(exporterOptions(o));
  const provider = new LoggerProvider({
    resource: resource(o),
    // sdk-logs 0.2xx takes the exporter inside the options object
    processors: [new BatchLogRecordProcessor({ exporter, maxExportBatchSize: 512, scheduledDelayMillis: 60000 })],
  });
  const logger = provider.getLogger('sentryq-otlp-driver', '1.0.0');
  const records = [
    [SeverityNumber.INFO, 'INFO', 'order placed'],
    [SeverityNumber.WARN, 'WARN', 'stock low \u26a0 caf\u00e9'],
    [SeverityNumber.ERROR, 'ERROR', 'payment declined \u4e2d\u6587'],
  ];
  for (const [severityNumber, severityText, text] of records) {
    logger.emit({ severityNumber, severityText, body: text + ' ' + o.marker,
      attributes: { 'sentryq.marker': o.marker } });
  }
  return flush(provider);
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const exportError = await (o.signal === 'traces' ? sendTraces(o) : sendLogs(o));
  const out = taps.map((t) => ({
    method: t.method,
    path: t.path,
    headers: t.headers,
    body_b64: Buffer.concat(t.chunks).toString('base64'),
    status: t.status,
    response_headers: t.response_headers,
    response_body: Buffer.concat(t.response_chunks).toString('utf8'),
  }));
  console.log(JSON.stringify({ requests: out, export_error: exportError }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
