// driver.js - drive the real @sentry/node SDK against sentryq for test/integration/test_sdk_node.py.
// Usage: node driver.js MODE DSN MARKER [TUNNEL_URL]
//   MODE exception:  a chained exception (PaymentError caused by RangeError) with user and tag
//   MODE attachment: an exception with two scope attachments (UTF-8 log.txt, 1024-byte dump.bin)
//   MODE tunnel:     an exception sent through the `tunnel` option (TUNNEL_URL)
// Prints one JSON line {"event_id": ...} after flushing; exits non-zero if the flush times out.
'use strict';

const Sentry = require('@sentry/node');

const [mode, dsn, marker, tunnel] = process.argv.slice(2);
if (!mode || !dsn || !marker) {
  console.error('usage: node driver.js MODE DSN MARKER [TUNNEL_URL]');
  process.exit(2);
}

const options = {
  dsn,
  release: 'sentryq-sdk-test@1.0',
  environment: 'ci',
  debug: true,
  sendClientReports: false,
};
if (mode === 'tunnel') options.tunnel = tunnel;
Sentry.init(options);
Sentry.setTag('marker', marker);
Sentry.setUser({ id: 'u-42' });

class PaymentError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'PaymentError';
  }
}

function charge(amount) {
  if (amount > 5) throw new RangeError('amount out of range ' + marker);
  return amount;
}

function pay() {
  try {
    charge(10);
  } catch (e) {
    throw new PaymentError('card declined \u4e2d\u6587 \u{1F600} ' + marker, { cause: e });
  }
}

// The binary attachment: every byte value 0..255, four times.
function dumpBytes() {
  const b = new Uint8Array(1024);
  for (let i = 0; i < b.length; i++) b[i] = i % 256;
  return b;
}

async function main() {
  let eventId;
  try {
    pay();
  } catch (err) {
    if (mode === 'attachment') {
      eventId = Sentry.withScope((scope) => {
        scope.addAttachment({ filename: 'log.txt', data: 'log line \u65e5\u5fd7 \u2603 ' + marker + '\n',
          contentType: 'text/plain' });
        scope.addAttachment({ filename: 'dump.bin', data: dumpBytes(), contentType: 'application/octet-stream' });
        return Sentry.captureException(err);
      });
    } else {
      eventId = Sentry.captureException(err);
    }
  }
  const ok = await Sentry.close(10000);
  console.log(JSON.stringify({ event_id: eventId, flushed: ok }));
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
