#!/usr/bin/python3
"""test_otlp.py - the real OpenTelemetry JS OTLP/HTTP exporters against a live sentryq.

Setup runs `npm ci` in test/otlp (versions pinned in package.json and package-lock.json); then
test/otlp/driver.js exports 3 spans or 3 log records through the JSON exporter
(exporter-*-otlp-http) or the protobuf one (exporter-*-otlp-proto), configured as Sentry's
"direct OTLP" setup describes: endpoint /api/<n>/integration/otlp/v1/traces (or /logs), the
credential in `X-Sentry-Auth: Sentry sentry_key=...` or in the query (?sentry_key=...), optionally
with the exporters' gzip compression and a trailing slash. The driver taps node's http.request and
prints the bytes the exporter wrote and the answer it got.

Per case: sentryq answered 202 with an empty body (and the CORS headers); the mock upstream got
exactly one request, at /api/<real id>/integration/otlp/v1/<signal> with the same trailing slash,
the real key (and secret, only when one was sent) in the carrier the exporter used and no other,
the body byte-identical to what the exporter sent, Content-Type, Content-Encoding and User-Agent
kept, Content-Length set, and the spans / log records readable in it. Also: a wrong Content-Type
gets 415 JSON and nothing is forwarded; GET gets 405; under rate_limits.passthrough, once the
upstream answered 429 `X-Sentry-Rate-Limits: 30:span:project`, traces get 429 (the exporter sees
it) while logs get 202 and are delivered, and logs keep getting 202 under a log limit too.

Config: upstream "wow" with vod_be (rule 1: key wow + secret vod_be -> real id 20) and web
(rule 2: key wow, no secret, path id 1 = its real id).
"""

import base64
import gzip
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id  # noqa: E402
from sqtest.http import check_cors, expect_json_error, request  # noqa: E402
from sqtest.mock import Mock, rec_body, rec_header  # noqa: E402
from sqtest.proc import SOURCE_ROOT, check, free_port, run_bounded, sdk_env, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import (  # noqa: E402
    ID_VOD, ID_WEB, KEY_VOD, KEY_WEB, SEC_VOD, Sentryq, make_config, standard_upstreams, start_stack,
    status_counters)

OTLP_DIR = os.path.join(SOURCE_ROOT, "test", "otlp")
DRIVER = os.path.join(OTLP_DIR, "driver.js")
S = {}

# The relay-side credential of Sentry's direct-OTLP header, DSN style: upstream name as the key,
# project name as the secret (rule 1); key only routes by the path id (rule 2, the web project).
AUTH_RULE1 = "Sentry sentry_key=wow, sentry_secret=vod_be"
AUTH_RULE2 = "Sentry sentry_key=wow"


def pins():
    with open(os.path.join(OTLP_DIR, "package.json")) as f:
        deps = json.load(f)["dependencies"]
    for name, v in deps.items():
        check(re.match(r"^\d+\.\d+\.\d+$", v), "%s must be pinned to an exact version, not %r" % (name, v))
    return deps


def setup_module():
    node, npm = shutil.which("node"), shutil.which("npm")
    check(node and npm, "node and npm are required for the OTLP exporter tests but %s missing: "
          "scripts/install-deps --test installs Node.js >= 20.19 with npm"
          % " and ".join(n for n, p in (("node", node), ("npm", npm)) if not p))
    rc, out, err = run_bounded([node, "--version"], 30)
    m = re.match(r"v(\d+)\.(\d+)", out.strip())
    check(rc == 0 and m and (int(m.group(1)), int(m.group(2))) >= (20, 19),
          "the OTLP exporter tests need Node.js >= 20.19, found %r" % out.strip())
    node_version = out.strip()
    want = pins()
    # npm ci: exactly the lock file; --prefer-offline takes what the npm cache already holds.
    rc, out, err = run_bounded([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], 600, cwd=OTLP_DIR,
                               env=dict(os.environ, npm_config_update_notifier="false"))
    check(rc == 0, "npm ci in %s failed (%s):\n%s\n%s" % (OTLP_DIR, rc, out[-2000:], err[-3000:]))
    got = {}
    for name in want:
        with open(os.path.join(OTLP_DIR, "node_modules", name, "package.json")) as f:
            got[name] = json.load(f)["version"]
    check(got == want, "installed %r, pinned %r" % (got, want))
    print("# node %s, %s" % (node_version,
                              ", ".join("%s %s" % (k.split("/")[-1], v) for k, v in sorted(got.items()))))
    S["ua"] = "OTel-OTLP-Exporter-JavaScript/" + got["@opentelemetry/exporter-trace-otlp-http"]
    start_stack(S)


def teardown_module():
    for k in ("sq", "sq_rl"):
        if k in S:
            S[k].stop()


# ------------------------------------------------------------ helpers

def run_driver(signal, fmt, url, headers=(), gzip_body=False):
    """One driver run: (marker, the requests it tapped)."""
    marker = "M" + new_event_id()[:12]
    args = ["node", DRIVER, signal, fmt, url, marker] + (["--gzip"] if gzip_body else [])
    for h in headers:
        args += ["--header", h]
    env = {k: v for k, v in sdk_env().items() if not k.startswith("OTEL_")}  # no ambient exporter config
    rc, out, err = run_bounded(args, 90, env=env, cwd=OTLP_DIR)
    check(rc == 0, "driver %s %s exited %s:\n%s\n%s" % (signal, fmt, rc, out[-3000:], err[-3000:]))
    lines = [ln for ln in out.splitlines() if ln.startswith('{"requests"')]
    check(lines, "driver printed no request record:\n%s\n%s" % (out[-2000:], err[-2000:]))
    doc = json.loads(lines[-1])
    taps = doc["requests"]
    for t in taps:
        t["export_error"] = doc["export_error"]
        t["body"] = base64.b64decode(t["body_b64"])
    check(taps, "the exporter sent no request (stderr %r)" % err[-2000:])
    return marker, taps


def tap_header(t, name, key="headers"):
    return [v for k, v in t[key] or [] if k.lower() == name.lower()]


def fresh(sq="sq", mock="mock"):
    wait_for(lambda: S[sq].status()[1]["queue"]["pending"] == 0, 15, "the queue to drain between cases")
    S[mock].reset()


def otlp_url(port, n, signal, slash, query=""):
    return "http://127.0.0.1:%d/api/%d/integration/otlp/v1/%s%s%s" % (
        port, n, signal, "/" if slash else "", "?" + query if query else "")


def decoded(body, encoding):
    return gzip.decompress(body) if encoding == "gzip" else body


def check_payload(body, encoding, signal, fmt, marker):
    """The spans or log records the driver made, readable in the forwarded body."""
    raw = decoded(body, encoding)
    if fmt == "protobuf":
        # ExportTraceServiceRequest / ExportLogsServiceRequest: field 1, length-delimited.
        check(raw[:1] == b"\x0a", "protobuf body starts %r" % raw[:8])
        n = raw.count(marker.encode())
        check(n >= 3, "the marker appears %d times in the protobuf body, want >= 3" % n)
        return
    doc = json.loads(raw)
    if signal == "traces":
        names = [sp["name"] for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]]
        check(sorted(names) == sorted(["checkout " + marker, "db.query " + marker, "payment.charge " + marker]),
              "span names %r" % names)
    else:
        bodies = [lr["body"]["stringValue"] for rl in doc["resourceLogs"] for sl in rl["scopeLogs"]
                  for lr in sl["logRecords"]]
        check(len(bodies) == 3 and all(b.endswith(" " + marker) for b in bodies), "log bodies %r" % bodies)


def exercise(signal, fmt, n, slash, carrier, gzip_body, rule=1):
    """Export through sentryq and check both ends. carrier: "header" or "query"."""
    fresh()
    c0 = status_counters(S["sq"])
    if carrier == "header":
        url = otlp_url(S["port"], n, signal, slash)
        headers = ["X-Sentry-Auth: " + (AUTH_RULE1 if rule == 1 else AUTH_RULE2)]
    else:
        url = otlp_url(S["port"], n, signal, slash, "sentry_key=wow" + ("&sentry_secret=vod_be" if rule == 1 else ""))
        headers = []
    marker, taps = run_driver(signal, fmt, url, headers, gzip_body)
    check(len(taps) == 1, "the exporter sent %d requests, want 1: %r" % (
        len(taps), [(t["path"], t["status"]) for t in taps]))
    t = taps[0]
    what = "%s %s %s%s%s" % (signal, fmt, carrier, " gzip" if gzip_body else "", " slash" if slash else "")
    check(t["status"] == 202 and t["response_body"] == "", "%s: sentryq answered %r %r" % (
        what, t["status"], t["response_body"][:200]))
    check(t["export_error"] is None, "%s: the exporter reported %r" % (what, t["export_error"]))
    check(tap_header(t, "Access-Control-Allow-Origin", "response_headers") == ["*"],
          "%s: no CORS on the 202: %r" % (what, t["response_headers"]))
    ctype = "application/json" if fmt == "json" else "application/x-protobuf"
    check(tap_header(t, "Content-Type") == [ctype], "%s: the exporter sent Content-Type %r" % (
        what, tap_header(t, "Content-Type")))
    check(tap_header(t, "Content-Encoding") == (["gzip"] if gzip_body else []),
          "%s: the exporter sent Content-Encoding %r" % (what, tap_header(t, "Content-Encoding")))

    recs = S["mock"].wait_count(1, 15)
    check(len(recs) == 1, "%s: upstream got %d requests: %r" % (what, len(recs), [(r["path"], r["query"]) for r in recs]))
    rec = recs[0]
    real_id = ID_VOD if rule == 1 else ID_WEB
    want_path = "/api/%d/integration/otlp/v1/%s%s" % (real_id, signal, "/" if slash else "")
    check(rec["method"] == "POST" and rec["path"] == want_path, "%s: forwarded to %s %s, want POST %s" % (
        what, rec["method"], rec["path"], want_path))
    xsa, authz = rec_header(rec, "X-Sentry-Auth"), rec_header(rec, "Authorization")
    check(not authz, "%s: an Authorization header was added: %r" % (what, authz))
    if carrier == "header":
        want = "Sentry sentry_key=%s" % (KEY_VOD if rule == 1 else KEY_WEB)
        if rule == 1:
            want += ", sentry_secret=%s" % SEC_VOD
        check(xsa == [want], "%s: X-Sentry-Auth upstream %r, want [%r]" % (what, xsa, want))
        check(rec["query"] == "", "%s: a query carrier was added: %r" % (what, rec["query"]))
    else:
        want = "sentry_key=%s" % (KEY_VOD if rule == 1 else KEY_WEB)
        if rule == 1:
            want += "&sentry_secret=%s" % SEC_VOD
        check(rec["query"] == want, "%s: query upstream %r, want %r" % (what, rec["query"], want))
        check(not xsa, "%s: an X-Sentry-Auth header was added: %r" % (what, xsa))
    body = rec_body(rec)
    check(body == t["body"], "%s: body changed: the exporter sent %d bytes, the upstream got %d" % (
        what, len(t["body"]), len(body)))
    check(rec_header(rec, "Content-Type") == [ctype], "%s: Content-Type upstream %r" % (
        what, rec_header(rec, "Content-Type")))
    check(rec_header(rec, "Content-Encoding") == (["gzip"] if gzip_body else []),
          "%s: Content-Encoding upstream %r" % (what, rec_header(rec, "Content-Encoding")))
    check(rec_header(rec, "User-Agent") == tap_header(t, "User-Agent") == [S["ua"]],
          "%s: User-Agent upstream %r, sent %r" % (what, rec_header(rec, "User-Agent"), tap_header(t, "User-Agent")))
    check(rec_header(rec, "Content-Length") == [str(len(body))] and not rec_header(rec, "Transfer-Encoding"),
          "%s: framing upstream: Content-Length %r Transfer-Encoding %r" % (
              what, rec_header(rec, "Content-Length"), rec_header(rec, "Transfer-Encoding")))
    check_payload(body, "gzip" if gzip_body else None, signal, fmt, marker)
    c1 = status_counters(S["sq"])
    check(c1["enqueued"] - c0["enqueued"] == 1 and c1["rejected"] == c0["rejected"],
          "%s: counters enqueued +%d rejected +%d" % (what, c1["enqueued"] - c0["enqueued"],
                                                      c1["rejected"] - c0["rejected"]))
    return rec, t


# ------------------------------------------------------------ the exporters through sentryq

def test_traces_json_header_auth():
    exercise("traces", "json", 5, slash=False, carrier="header", gzip_body=False)


def test_traces_protobuf_query_auth_gzip_trailing_slash():
    exercise("traces", "protobuf", 7, slash=True, carrier="query", gzip_body=True)


def test_traces_json_gzip_key_only_routes_by_real_id():
    """The JavaScript way: key only; the path id is the real one (rule 2), no secret appears."""
    exercise("traces", "json", ID_WEB, slash=True, carrier="header", gzip_body=True, rule=2)


def test_logs_json_query_auth():
    exercise("logs", "json", 5, slash=False, carrier="query", gzip_body=False)


def test_logs_protobuf_header_auth_gzip_trailing_slash():
    exercise("logs", "protobuf", 9, slash=True, carrier="header", gzip_body=True)


def test_logs_protobuf_query_key_only_routes_by_real_id():
    exercise("logs", "protobuf", ID_WEB, slash=False, carrier="query", gzip_body=False, rule=2)


# ------------------------------------------------------------ refusals

def otlp_post(path, body, ctype, port=None, auth=AUTH_RULE1, method="POST"):
    hdrs = [("X-Sentry-Auth", auth)] + ([("Content-Type", ctype)] if ctype is not None else [])
    return request(port or S["port"], method, path, hdrs, body)


def test_wrong_content_type_415_nothing_forwarded():
    fresh()
    c0 = status_counters(S["sq"])
    body = b'{"resourceSpans":[]}'
    refused = 0
    for signal in ("traces", "logs"):
        path = "/api/5/integration/otlp/v1/%s" % signal
        for ctype in ("text/plain", "application/octet-stream", "application/protobuf",
                      "application/x-www-form-urlencoded", None):
            r = otlp_post(path, body, ctype)
            doc = expect_json_error(r, 415, "%s with Content-Type %r" % (signal, ctype))
            check("Content-Type" in doc["detail"], "415 detail %r" % doc["detail"])
            refused += 1
        r = otlp_post(path, b"", "application/json", method="GET")
        expect_json_error(r, 405, "GET %s" % signal)
        r = otlp_post(path, b"", "application/json")
        expect_json_error(r, 400, "%s with an empty body" % signal)
        refused += 2
    c1 = status_counters(S["sq"])
    check(c1["enqueued"] == c0["enqueued"] and c1["rejected"] - c0["rejected"] == refused,
          "counters after the refusals: enqueued +%d rejected +%d (want 0, %d)" % (
              c1["enqueued"] - c0["enqueued"], c1["rejected"] - c0["rejected"], refused))
    # A sentinel on the same route: had a refused request been queued, it would arrive first.
    r = otlp_post("/api/5/integration/otlp/v1/traces", body, "application/json")
    check(r.status == 202 and r.body == b"", "the sentinel answered %r" % r)
    check_cors(r, "OTLP 202")
    recs = S["mock"].wait_count(1, 15)
    check(len(recs) == 1 and rec_body(recs[0]) == body, "upstream got %r, want only the sentinel" % (
        [(x["path"], rec_body(x)[:40]) for x in recs]))


def test_content_type_must_be_the_media_type():
    """application/json and application/x-protobuf, as Relay compares them: a type that merely
    starts with one of them is another type (Sentry answers 415; queued, it would only become a
    dead letter). Parameters after ';' are allowed."""
    fresh()
    body = b'{"resourceLogs":[]}'
    for ctype in ("application/jsonl", "application/json-patch+json", "application/x-protobuffer"):
        r = otlp_post("/api/5/integration/otlp/v1/logs", body, ctype)
        expect_json_error(r, 415, "logs with Content-Type %r" % ctype)
    for ctype in ("application/json; charset=utf-8", "Application/JSON", "application/x-protobuf"):
        r = otlp_post("/api/5/integration/otlp/v1/logs", body, ctype)
        check(r.status == 202, "logs with Content-Type %r answered %r" % (ctype, r))
    recs = S["mock"].wait_count(3, 15)
    check(len(recs) == 3 and all(rec_header(x, "Content-Type")[0].lower().startswith(("application/json",
                                                                                       "application/x-protobuf"))
                                 for x in recs), "upstream got %r" % [rec_header(x, "Content-Type") for x in recs])


# ------------------------------------------------------------ rate limits

def limits_of(sq, route):
    return sq.status()[1]["forward"]["limits"].get(route, [])


def test_passthrough_span_limit_traces_429_logs_202():
    mock = S["mock_rl"] = Mock().start()
    port = free_port()
    cfg = make_config(port, S["redis"].port, standard_upstreams(mock.url), prefix="sentryq-otlp-rl:",
                      passthrough=True)
    sq = S["sq_rl"] = Sentryq().start(cfg, port)
    mock.program(rules=[
        {"path_contains": "/integration/otlp/v1/traces",
         "responses": [{"status": 429, "headers": {"X-Sentry-Rate-Limits": "30:span:project", "Retry-After": "30"},
                        "count": 1}, {"status": 200}]},
        {"path_contains": "/integration/otlp/v1/logs",
         "responses": [{"status": 200, "count": 1},
                       {"status": 429, "headers": {"X-Sentry-Rate-Limits": "30:log_item;log_byte:project"},
                        "count": 1}, {"status": 200}]},
    ])
    auth = ["X-Sentry-Auth: " + AUTH_RULE1]
    traces = otlp_url(port, 5, "traces", False)
    logs = otlp_url(port, 5, "logs", False)
    # 1. Accepted and queued; its delivery gets the 429 that starts the span limit.
    _, taps = run_driver("traces", "json", traces, auth)
    check([t["status"] for t in taps] == [202], "first traces export answered %r" % [t["status"] for t in taps])
    wait_for(lambda: any("span" in lim["categories"] for lim in limits_of(sq, "wow/%d" % ID_VOD)), 15,
             "the span limit in /status after the upstream's 429")
    # 2. Traces are refused at ingest now: the exporter gets 429 with the limit (and does not
    # retry: Retry-After is past its 10 s export timeout).
    _, taps = run_driver("traces", "json", traces, auth, gzip_body=True)
    check(taps and all(t["status"] == 429 for t in taps), "traces under the span limit answered %r" % (
        [(t["status"], t["response_body"][:100]) for t in taps]))
    t = taps[0]
    check(t["export_error"], "the exporter took the 429 for a success")
    lim = tap_header(t, "X-Sentry-Rate-Limits", "response_headers")
    ra = tap_header(t, "Retry-After", "response_headers")
    check(lim and "span" in lim[0] and ra and ra[0].isdigit() and 20 <= int(ra[0]) <= 30,
          "the 429 carried X-Sentry-Rate-Limits %r Retry-After %r" % (lim, ra))
    check(json.loads(t["response_body"]).get("detail"), "the 429 body %r is not JSON detail" % t["response_body"])
    # 3. Logs still get 202 and are delivered (a span limit does not hold them).
    _, taps = run_driver("logs", "protobuf", logs, auth)
    check([x["status"] for x in taps] == [202], "logs under the span limit answered %r" % [x["status"] for x in taps])
    rec = wait_for(lambda: next((x for x in mock.requests() if "/logs" in x["path"]), None), 15,
                   "the logs request at the upstream")
    check(rec_body(rec) == taps[0]["body"] and rec["status"] == 200, "logs delivery %r" % rec["status"])
    # 4. A log limit in force: logs are still answered 202 (Sentry never refuses OTLP logs).
    _, taps = run_driver("logs", "json", logs, auth)
    check([x["status"] for x in taps] == [202], "second logs export answered %r" % [x["status"] for x in taps])
    wait_for(lambda: any("log_item" in lim["categories"] for lim in limits_of(sq, "wow/%d" % ID_VOD)), 15,
             "the log limit in /status after the upstream's 429")
    _, taps = run_driver("logs", "json", logs, auth, gzip_body=True)
    check([x["status"] for x in taps] == [202], "logs under a log limit answered %r" % [x["status"] for x in taps])
    check(not tap_header(taps[0], "Retry-After", "response_headers"), "a Retry-After on a 202: %r" % (
        taps[0]["response_headers"]))
    # The refused traces request was never queued: the upstream saw the first one only.
    tr = [x for x in mock.requests() if "/traces" in x["path"]]
    check(len(tr) == 1 and tr[0]["status"] == 429, "traces at the upstream: %r" % [(x["path"], x["status"]) for x in tr])


if __name__ == "__main__":
    main(globals())
