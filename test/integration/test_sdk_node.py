#!/usr/bin/python3
"""test_sdk_node.py - the real npm @sentry/node SDK against a live sentryq.

Setup runs `npm install --no-audit --no-fund` in test/sdk (the version is pinned in package.json
and package-lock.json), then test/sdk/driver.js sends: a chained exception (query-string auth), an
exception with two attachments, and an exception through the `tunnel` option. The mock upstream
must get them with the credentials rewritten (query sentry_key = the real key; for the tunnel the
envelope header dsn names the real key and id and no query or auth header is added) and the
payload intact (exception types and messages, attachment bytes exact).

Config: upstream "wow", project web (real id 1): the JS SDK never sends the DSN secret, so DSNs
http://wow[:vod_be]@sentryq/1 route by rule 2 (key names the upstream, path id is the real id).
"""

import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import HEX32, decode_body, new_event_id, parse_envelope  # noqa: E402
from sqtest.http import query_pairs  # noqa: E402
from sqtest.mock import rec_body, rec_header  # noqa: E402
from sqtest.proc import SOURCE_ROOT, check, run_bounded, sdk_env, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import ID_WEB, KEY_WEB, start_stack, status_counters  # noqa: E402

SDK_DIR = os.path.join(SOURCE_ROOT, "test", "sdk")
S = {}


def pinned_version():
    with open(os.path.join(SDK_DIR, "package.json")) as f:
        v = json.load(f)["dependencies"]["@sentry/node"]
    check(re.match(r"^\d+\.\d+\.\d+$", v), "@sentry/node must be pinned to an exact version, not %r" % v)
    return v


def setup_module():
    node, npm = shutil.which("node"), shutil.which("npm")
    check(node and npm, "node and npm are required for the @sentry/node tests but %s missing: install "
          "Node.js >= 20.19 with npm" % " and ".join(n for n, p in (("node", node), ("npm", npm)) if not p))
    rc, out, err = run_bounded([node, "--version"], 30)
    m = re.match(r"v(\d+)\.(\d+)", out.strip())
    check(rc == 0 and m and (int(m.group(1)), int(m.group(2))) >= (20, 19),
          "@sentry/node %s needs Node.js >= 20.19, found %r" % (pinned_version(), out.strip()))
    S["node_version"] = out.strip()
    # npm reaches the registry as the machine is set up (proxy variables included)
    rc, out, err = run_bounded([npm, "install", "--no-audit", "--no-fund"], 600, cwd=SDK_DIR,
                               env=dict(os.environ, npm_config_update_notifier="false"))
    check(rc == 0, "npm install in %s failed (%s):\n%s\n%s" % (SDK_DIR, rc, out[-2000:], err[-3000:]))
    with open(os.path.join(SDK_DIR, "node_modules", "@sentry", "node", "package.json")) as f:
        S["version"] = json.load(f)["version"]
    check(S["version"] == pinned_version(), "installed @sentry/node %s, pinned %s" % (S["version"], pinned_version()))
    print("# node %s, @sentry/node %s" % (S["node_version"], S["version"]))
    start_stack(S)


def teardown_module():
    if "sq" in S:
        S["sq"].stop()


def run_driver(mode, dsn, tunnel=None):
    marker = "M" + new_event_id()[:12]
    args = ["node", os.path.join(SDK_DIR, "driver.js"), mode, dsn, marker] + ([tunnel] if tunnel else [])
    rc, out, err = run_bounded(args, 90, env=sdk_env(), cwd=SDK_DIR)
    check(rc == 0, "driver %s exited %s:\n%s\n%s" % (mode, rc, out[-3000:], err[-3000:]))
    doc = None
    for line in reversed(out.splitlines()):
        if line.startswith("{\"event_id\""):
            doc = json.loads(line)
            break
    check(doc and HEX32.match(doc.get("event_id") or ""), "driver printed no event id:\n%s" % out[-2000:])
    return marker, doc["event_id"]


def find_event(eid, timeout=20):
    """The mock record whose envelope carries the event eid: (rec, header, items)."""
    def find():
        for rec in S["mock"].requests():
            ce = (rec_header(rec, "Content-Encoding") or [None])[0]
            body = decode_body(rec_body(rec), ce)
            if eid.encode() not in body:
                continue
            hdr, items = parse_envelope(body)
            if any(it.get("type") == "event" and json.loads(p).get("event_id") == eid for it, p in items):
                return rec, hdr, items
        return None
    return wait_for(find, timeout, "event %s at the upstream" % eid)


def event_of(items):
    return next(json.loads(p) for it, p in items if it.get("type") == "event")


def check_query_carrier(rec):
    check(rec["method"] == "POST" and rec["path"] == "/api/%d/envelope/" % ID_WEB,
          "forwarded to %s %s" % (rec["method"], rec["path"]))
    q = dict(query_pairs(rec["query"]))
    check(q.get("sentry_key") == KEY_WEB, "query sentry_key %r, want the real key (query %r)" % (
        q.get("sentry_key"), rec["query"]))
    check(q.get("sentry_version") == "7" and q.get("sentry_client") == "sentry.javascript.node%%2F%s" % S["version"],
          "other query fields changed: %r" % rec["query"])
    check("sentry_secret" not in q, "a secret appeared upstream: %r" % rec["query"])
    check(not rec_header(rec, "X-Sentry-Auth") and not rec_header(rec, "Authorization"),
          "a header carrier was added")


def check_exception(ev, marker):
    vals = ev["exception"]["values"]
    by_type = {v.get("type"): v.get("value") for v in vals}
    check(by_type.get("PaymentError") == "card declined \u4e2d\u6587 \U0001F600 " + marker,
          "PaymentError value %r" % by_type.get("PaymentError"))
    check(by_type.get("RangeError") == "amount out of range " + marker, "RangeError value %r" % by_type.get("RangeError"))
    frames = [f.get("function") for v in vals for f in (v.get("stacktrace") or {}).get("frames", [])]
    check("pay" in frames and "charge" in frames, "stack frames lost: %r" % frames)
    check(ev.get("tags", {}).get("marker") == marker and ev.get("user", {}).get("id") == "u-42",
          "scope data lost: tags %r user %r" % (ev.get("tags"), ev.get("user")))


# ------------------------------------------------------------ tests

def test_exception_query_key_rewritten():
    S["mock"].reset()
    marker, eid = run_driver("exception", "http://wow:vod_be@127.0.0.1:%d/1" % S["port"])
    rec, hdr, items = find_event(eid)
    check_query_carrier(rec)
    check(hdr.get("event_id") == eid, "envelope header event_id %r" % hdr.get("event_id"))
    check("dsn" not in hdr or KEY_WEB in hdr["dsn"], "envelope dsn not rewritten: %r" % hdr.get("dsn"))
    check_exception(event_of(items), marker)
    tpk = (hdr.get("trace") or {}).get("public_key")
    if tpk is not None and tpk != KEY_WEB:
        print("# note: trace.public_key %r forwarded unmapped (query carrier)" % tpk)


def test_attachment_bytes_exact():
    S["mock"].reset()
    marker, eid = run_driver("attachment", "http://wow@127.0.0.1:%d/1" % S["port"])
    rec, hdr, items = find_event(eid)
    check_query_carrier(rec)
    check_exception(event_of(items), marker)
    att = {it.get("filename"): (it, p) for it, p in items if it.get("type") == "attachment"}
    check(set(att) == {"log.txt", "dump.bin"}, "attachments upstream: %r" % list(att))
    want_log = ("log line \u65e5\u5fd7 \u2603 " + marker + "\n").encode()
    check(att["log.txt"][1] == want_log, "log.txt bytes %r, want %r" % (att["log.txt"][1][:100], want_log))
    want_dump = bytes(i % 256 for i in range(1024))
    check(att["dump.bin"][1] == want_dump, "dump.bin: %d bytes, differs from the 1024 sent" % len(att["dump.bin"][1]))
    check(att["dump.bin"][0].get("length") == 1024, "dump.bin item header %r" % att["dump.bin"][0])


def test_tunnel_option():
    S["mock"].reset()
    c0 = status_counters(S["sq"])
    marker, eid = run_driver("tunnel", "http://wow@127.0.0.1:%d/1" % S["port"],
                             "http://127.0.0.1:%d/tunnel" % S["port"])
    rec, hdr, items = find_event(eid)
    check(rec["method"] == "POST" and rec["path"] == "/api/%d/envelope/" % ID_WEB,
          "tunnel forwarded to %s %s" % (rec["method"], rec["path"]))
    check(rec["query"] == "", "tunnel forwarded with a query %r" % rec["query"])
    check(not rec_header(rec, "X-Sentry-Auth") and not rec_header(rec, "Authorization"),
          "tunnel forwarded with an auth header")
    want = "http://%s@127.0.0.1:%d/%d" % (KEY_WEB, S["mock"].port, ID_WEB)
    check(hdr.get("dsn") == want, "envelope dsn %r, want %r" % (hdr.get("dsn"), want))
    check_exception(event_of(items), marker)
    c1 = status_counters(S["sq"])
    check(c1["rejected"] == c0["rejected"], "sentryq rejected %d tunnel requests" % (c1["rejected"] - c0["rejected"]))


def test_every_request_rewritten():
    """Session envelopes and everything else the SDK sent: real key only, relay names gone."""
    recs = S["mock"].requests()
    check(recs, "nothing upstream")
    for rec in recs:
        check(rec["status"] == 200, "mock answered %r" % rec["status"])
        check(rec["path"] == "/api/%d/envelope/" % ID_WEB, "path %r" % rec["path"])
        body = decode_body(rec_body(rec), (rec_header(rec, "Content-Encoding") or [None])[0])
        hdr = parse_envelope(body)[0]
        if rec["query"]:
            check(dict(query_pairs(rec["query"])).get("sentry_key") == KEY_WEB, "query %r" % rec["query"])
        else:
            check(KEY_WEB in hdr.get("dsn", ""), "tunnel envelope without the real dsn: %r" % hdr)
        check("wow@" not in hdr.get("dsn", ""), "relay-side dsn forwarded: %r" % hdr.get("dsn"))


if __name__ == "__main__":
    main(globals())
