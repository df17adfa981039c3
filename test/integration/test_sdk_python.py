#!/usr/bin/python3
"""test_sdk_python.py - Debian's python3-sentry-sdk, unmodified, against a live sentryq.

A subprocess (/usr/bin/python3) inits the SDK with DSN http://wow:vod_be@127.0.0.1:<sentryq>/1,
captures a chained exception, a Unicode message and a transaction with spans, and flushes. The
mock upstream must then hold them under project vod_be's real id with X-Sentry-Auth carrying the
real key and (the SDK sent a secret) the real secret, every payload decoding to what was sent.
scripts/install-deps --test installs python3-sentry-sdk.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import decode_body, new_event_id, parse_envelope, split_envelope  # noqa: E402
from sqtest.http import parse_sentry_auth  # noqa: E402
from sqtest.mock import rec_body, rec_header  # noqa: E402
from sqtest.proc import check, run_bounded, sdk_env, tmpdir, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import ID_VOD, KEY_VOD, SEC_VOD, start_stack, status_counters  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
S = {}

DRIVER = r'''
import json, sys
import sentry_sdk

dsn, marker = sys.argv[1], sys.argv[2]
sentry_sdk.init(dsn=dsn, traces_sample_rate=1.0, release="sentryq-sdk-test@1.0", environment="ci",
                debug=True, shutdown_timeout=10)
sentry_sdk.set_tag("marker", marker)
sentry_sdk.set_user({"id": "u-42"})


class PaymentError(Exception):
    pass


def charge(amount):
    return amount / 0


def pay():
    try:
        charge(10)
    except ZeroDivisionError as e:
        raise PaymentError("card declined " + marker) from e


out = {}
try:
    pay()
except PaymentError:
    out["exception"] = sentry_sdk.capture_exception()
out["message"] = sentry_sdk.capture_message("\u4e2d\u6587 \u041f\u0440\u0438\u0432\u0435\u0442 \U0001F600 " + marker,
                                            level="warning")
with sentry_sdk.start_transaction(op="task", name="nightly-report-" + marker) as txn:
    for i in range(3):
        with txn.start_child(op="db.query", description="step %d" % i):
            pass
    out["trace_id"] = txn.trace_id
sentry_sdk.flush(timeout=10)
print(json.dumps(out))
'''


def setup_module():
    rc, out, err = run_bounded([SYSTEM_PYTHON, "-c", "import sentry_sdk; print(sentry_sdk.VERSION)"], 60,
                               env=sdk_env())
    check(rc == 0, "Debian's sentry_sdk is not importable by %s (install python3-sentry-sdk: "
          "scripts/install-deps --test):\n%s" % (SYSTEM_PYTHON, err[-1500:]))
    S["sdk_version"] = out.strip()
    print("# sentry_sdk %s" % S["sdk_version"])
    start_stack(S)
    S["driver"] = os.path.join(tmpdir("sentryq-pysdk-"), "driver.py")
    with open(S["driver"], "w") as f:
        f.write(DRIVER)


def teardown_module():
    if "sq" in S:
        S["sq"].stop()


def run_sdk(dsn):
    marker = "M" + new_event_id()[:12]
    rc, out, err = run_bounded([SYSTEM_PYTHON, S["driver"], dsn, marker], 60, env=sdk_env())
    check(rc == 0, "SDK driver exited %s:\n%s" % (rc, err[-3000:]))
    for bad in ("Unexpected status code", "Internal error in sentry_sdk", "Traceback"):
        check(bad not in err, "the SDK reported a problem (%r):\n%s" % (bad, err[-3000:]))
    ids = json.loads(out.strip().splitlines()[-1])
    return marker, ids


def payloads(rec):
    """[(kind, dict)] of a forwarded request: the store event, or each envelope JSON item."""
    ce = (rec_header(rec, "Content-Encoding") or [None])[0]
    body = decode_body(rec_body(rec), ce)
    if rec["path"].endswith("/store/"):
        return [("event", json.loads(body))]
    out = []
    for item, payload in parse_envelope(body)[1]:
        try:
            out.append((item.get("type"), json.loads(payload)))
        except ValueError:
            out.append((item.get("type"), payload))
    return out


def collect(marker, want_kinds, timeout=20):
    """Wait until the mock holds an event of each wanted kind carrying marker."""
    def ready():
        found = {}
        for rec in S["mock"].requests():
            for kind, doc in payloads(rec):
                if marker in json.dumps(doc, ensure_ascii=False):
                    found.setdefault(kind if kind != "event" or "exception" not in doc else "exception", []
                                     ).append((rec, doc))
        return found if all(k in found for k in want_kinds) else None
    return wait_for(ready, timeout, "SDK events %s with marker %s at the upstream" % (want_kinds, marker))


def check_request(rec, path_id):
    check(rec["method"] == "POST", "method %r" % rec["method"])
    check(rec["path"] in ("/api/%d/store/" % path_id, "/api/%d/envelope/" % path_id), "path %r" % rec["path"])
    check(rec["query"] == "", "query carrier added: %r" % rec["query"])
    xsa = rec_header(rec, "X-Sentry-Auth")
    check(len(xsa) == 1, "X-Sentry-Auth upstream %r" % xsa)
    d = dict(parse_sentry_auth(xsa[0]))
    check(d.get("sentry_key") == KEY_VOD, "sentry_key %r, want the real key" % d.get("sentry_key"))
    check(d.get("sentry_secret") == SEC_VOD, "sentry_secret %r, want the real secret" % d.get("sentry_secret"))
    check(d.get("sentry_client") == "sentry.python/%s" % S["sdk_version"], "sentry_client %r" % d.get("sentry_client"))
    check(not rec_header(rec, "Authorization"), "Authorization added")
    check(rec_header(rec, "Content-Encoding") == ["gzip"], "Content-Encoding %r" % rec_header(rec, "Content-Encoding"))


def check_events(marker, ids, found, path_id):
    (rec, ev), = found["exception"][:1]
    check_request(rec, path_id)
    check(ev.get("event_id") == ids["exception"], "exception event_id %r, SDK said %r" % (ev.get("event_id"), ids["exception"]))
    types = [v.get("type") for v in ev["exception"]["values"]]
    check("PaymentError" in types and "ZeroDivisionError" in types, "exception types %r" % types)
    vals = [v.get("value") for v in ev["exception"]["values"]]
    check("card declined " + marker in vals, "exception values %r" % vals)
    frames = ev["exception"]["values"][-1]["stacktrace"]["frames"]
    check(any(f.get("function") == "pay" for f in frames), "stack frames lost: %r" % frames[-3:])
    check(ev.get("tags", {}).get("marker") == marker and ev.get("user", {}).get("id") == "u-42", "scope lost")

    msgs = [(r, d) for r, d in found["event"] if d.get("event_id") == ids["message"]]
    check(msgs, "message event %s not upstream" % ids["message"])
    rec, ev = msgs[0]
    check_request(rec, path_id)
    text = ev.get("message") or ev.get("logentry", {}).get("message")
    want = "\u4e2d\u6587 \u041f\u0440\u0438\u0432\u0435\u0442 \U0001F600 " + marker
    check(text == want, "message %r, want %r" % (text, want))
    check(ev.get("level") == "warning", "level %r" % ev.get("level"))

    rec, ev = found["transaction"][0]
    check_request(rec, path_id)
    check(rec["path"].endswith("/envelope/"), "transaction went to %r" % rec["path"])
    check(ev.get("transaction") == "nightly-report-" + marker, "transaction name %r" % ev.get("transaction"))
    check(ev["contexts"]["trace"]["trace_id"] == ids["trace_id"], "trace id changed")
    check(sorted(s.get("description") for s in ev.get("spans", [])) == ["step 0", "step 1", "step 2"],
          "spans %r" % ev.get("spans"))
    hdr = json.loads(split_envelope(decode_body(rec_body(rec), "gzip"))[0])
    check("dsn" not in hdr or KEY_VOD in hdr["dsn"], "envelope dsn not rewritten: %r" % hdr.get("dsn"))


# ------------------------------------------------------------ tests

def test_exception_message_transaction():
    S["mock"].reset()
    c0 = status_counters(S["sq"])
    marker, ids = run_sdk("http://wow:vod_be@127.0.0.1:%d/1" % S["port"])
    found = collect(marker, ["exception", "event", "transaction"])
    check_events(marker, ids, found, ID_VOD)
    c1 = status_counters(S["sq"])
    check(c1["rejected"] == c0["rejected"], "sentryq rejected %d SDK requests" % (c1["rejected"] - c0["rejected"]))


def test_dsn_with_path_prefix():
    S["mock"].reset()
    marker, ids = run_sdk("http://wow:vod_be@127.0.0.1:%d/sentry/1" % S["port"])
    found = collect(marker, ["exception", "event", "transaction"])
    check_events(marker, ids, found, ID_VOD)


def test_every_request_rewritten():
    """Whatever else the SDK sent (sessions, ...) also went out with the real credentials."""
    recs = S["mock"].requests()
    check(recs, "nothing upstream")
    for rec in recs:
        check_request(rec, ID_VOD)
        check(isinstance(rec["status"], int) and rec["status"] == 200, "mock answered %r" % rec["status"])


if __name__ == "__main__":
    main(globals())
