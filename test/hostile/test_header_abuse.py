#!/usr/bin/python3
"""test_header_abuse.py - oversized, malformed and odd request heads and paths, at the defaults.

Asserted: every error answer is sentryq's JSON {"detail": ...} with Content-Type application/json
(none of libevent's HTML pages): a 70 KiB header gets 431, 10 000 headers 431 (over the 64 KiB
head) or, when they fit in it, a normal answer; a 100 KiB request line 431 (or 414); garbage 400;
unknown methods 501; `HEAD /status` has a Content-Length and no body (the answer pipelined after it
parses); `/api/99999999999999999999/store/` and `/api/0/store/` 400; `//api//1//store//` routes
as `/api/1/store/`; an envelope header whose key is escaped (`"d\\u0073n"`) has its dsn rewritten,
so the relay-side DSN and its secret never reach the mock. sentryq stays up, /status under 50 ms,
and a valid request afterwards is delivered."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.attack import (ID_VOD, KEY_VOD, KEY_WEB, Poller, Stack, check_status_bound, expect_json_detail, figure, new_eid,  # noqa: E402
                           parse_answers, raw, record_event_id, status_summary, valid_request_delivered,
                           wait_delivered)
from sqtest.mock import rec_body  # noqa: E402
from sqtest.proc import check  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import AUTH_VOD  # noqa: E402

S = {"outcomes": []}


def setup_module():
    S["stack"] = Stack().start()
    S["poll"] = Poller(S["stack"].port)


def teardown_module():
    if "poll" in S:
        S["poll"].stop()
    S["stack"].stop()


def one(what, data, methods=(), timeout=5.0):
    answers = parse_answers(raw(S["stack"].port, data, timeout=timeout), methods)
    S["outcomes"].append("%s -> %s" % (what, ",".join("%s %s" % (a.status, (a.header("Content-Type") or "-")
                                                                 .split(";")[0]) for a in answers) or "nothing"))
    check(answers, "%s: no answer" % what)
    return answers


def store_head(target, extra=b""):
    return (b"POST " + target + b" HTTP/1.1\r\nHost: relay\r\nConnection: close\r\nX-Sentry-Auth: " +
            AUTH_VOD.encode() + b"\r\nContent-Type: application/json\r\n" + extra)


def test_header_70k_431():
    a = one("70 KiB header", b"GET /status HTTP/1.1\r\nHost: relay\r\nX-Big: " + b"a" * (70 << 10) + b"\r\n\r\n")
    expect_json_detail(a[0], 431, "a 70 KiB header")


def test_ten_thousand_headers():
    # 10 000 headers of 10 bytes are 100 KB, over the 64 KiB head: 431.
    hdrs = b"".join(b"X-%05d: v\r\n" % i for i in range(10000))
    a = one("10000 headers (100 KB)", b"GET /status HTTP/1.1\r\nHost: relay\r\n" + hdrs + b"\r\n")
    expect_json_detail(a[0], 431, "10 000 headers")
    # 10 000 headers that fit in the 64 KiB head (5 bytes each): a normal answer, promptly.
    tiny = b"".join(b"a:%d\r\n" % (i % 10) for i in range(10000))
    eid = new_eid()
    body = json.dumps({"event_id": eid, "message": "10 000 tiny headers"}).encode()
    a = one("10000 tiny headers (50 KB)", store_head(b"/api/20/store/", tiny) +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)
    check(a[0].status == 200, "10 000 tiny headers answered %r" % a[0])
    wait_delivered(S["stack"], [eid])


def test_request_line_100k():
    a = one("100 KiB request line", b"GET /api/1/store/?" + b"x" * (100 << 10) + b" HTTP/1.1\r\nHost: relay\r\n\r\n")
    check(a[0].status in (431, 414), "a 100 KiB request line answered %r" % a[0])
    expect_json_detail(a[0], a[0].status, "a 100 KiB request line")


def test_garbage_400():
    for what, data in (("binary garbage", b"\x00\xff\xfe\x16\x03\x01\x02\x00" + os.urandom(300) + b"\r\n\r\n"),
                       ("TLS hello on plain HTTP", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40),
                       ("no version", b"GET /status\r\n\r\n"),
                       ("bare CR in a header", b"GET /status HTTP/1.1\r\nHost: re\rlay\r\n\r\n"),
                       ("header without colon", b"GET /status HTTP/1.1\r\nHost relay\r\n\r\n"),
                       ("NUL in the target", b"GET /sta\x00tus HTTP/1.1\r\nHost: relay\r\n\r\n"),
                       ("obsolete line folding", b"GET /status HTTP/1.1\r\nHost: relay\r\n  folded\r\n\r\n")):
        a = one(what, data)
        check(a[0].status == 400, "%s answered %r" % (what, a[0]))
        expect_json_detail(a[0], 400, what)
    a = one("HTTP/2.0 request line", b"GET /status HTTP/2.0\r\nHost: relay\r\n\r\n")
    expect_json_detail(a[0], 505, "HTTP/2.0")


def test_unknown_methods_501():
    for m in (b"FOO", b"PROPFIND", b"BREW", b"get"):
        a = one("method %s" % m.decode(), m + b" /status HTTP/1.1\r\nHost: relay\r\n\r\n")
        expect_json_detail(a[0], 501, "method %s" % m.decode())


def test_head_status_length_no_body():
    data = (b"HEAD /status HTTP/1.1\r\nHost: relay\r\n\r\n"
            b"GET /status HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
    a = one("HEAD /status then GET /status", data, methods=("HEAD", "GET"))
    check(a[0].status == 200, "HEAD /status answered %r" % a[0])
    check(a[0].header("Content-Length") not in (None, ""), "HEAD /status without Content-Length: %r" % a[0].headers)
    check(a[0].body == b"", "HEAD /status had a body: %r" % a[0].body[:100])
    # No body bytes after the HEAD answer: the next answer on the connection parses as one.
    check(len(a) == 2 and a[1].status == 200 and json.loads(a[1].body).get("status") == "ok",
          "the answer after HEAD /status: %r" % a[1:])
    check(int(a[0].header("Content-Length")) > 0, "HEAD Content-Length %r" % a[0].header("Content-Length"))


def test_bad_project_ids_400():
    body = json.dumps({"event_id": new_eid(), "message": "bad id"}).encode()
    for target, status in ((b"/api/99999999999999999999/store/", 400), (b"/api/0/store/", 400),
                           (b"/api/-1/store/", 404)):   # not digits: no ingest path at all
        a = one("POST %s" % target.decode(), store_head(target) + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        expect_json_detail(a[0], status, "POST %s" % target.decode())


def test_double_slashes_route_like_single():
    eid = new_eid()
    body = json.dumps({"event_id": eid, "message": "double slashes"}).encode()
    a = one("POST //api//1//store//", store_head(b"//api//1//store//") +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)
    check(a[0].status == 200 and json.loads(a[0].body).get("id") == eid, "//api//1//store// answered %r" % a[0])
    recs = [r for r in wait_delivered(S["stack"], [eid]) if record_event_id(r) == eid]
    check(len(recs) == 1 and recs[0]["path"] == "/api/20/store/", "forwarded as %r" % [r["path"] for r in recs])


def test_escaped_dsn_key_rewritten():
    """`"d\\u0073n"` is the key "dsn" to every JSON parser, Sentry's included: sentryq must rewrite it.
    Through /tunnel the dsn is the credential (its key, wow, and path id 1: project web; a DSN's
    secret is not read, as Relay); through /api/1/envelope/ X-Sentry-Auth routes it (vod_be, id 20).
    Either way the forwarded dsn is the real DSN of the project the request went to."""
    mock_port = S["stack"].mock.port
    for target, hdrs in ((b"/tunnel", b""), (b"/api/1/envelope/", b"X-Sentry-Auth: " + AUTH_VOD.encode() + b"\r\n")):
        eid = new_eid()
        head = b'{"event_id":"%s","d\\u0073n":"http://wow:vod_be@relay.example:9000/1"}' % eid.encode()
        payload = b'{"message":"escaped dsn key"}'
        env = head + b"\n" + b'{"type":"event","length":%d}\n' % len(payload) + payload + b"\n"
        a = one("escaped dsn key via %s" % target.decode(), b"POST " + target +
                b" HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n" + hdrs +
                b"Content-Type: application/x-sentry-envelope\r\nContent-Length: %d\r\n\r\n" % len(env) + env)
        check(a[0].status == 200, "escaped dsn key via %s answered %r" % (target.decode(), a[0]))
        recs = [r for r in wait_delivered(S["stack"], [eid]) if record_event_id(r) == eid]
        check(len(recs) == 1, "%d forwards of the escaped-dsn envelope" % len(recs))
        got = rec_body(recs[0])
        first = json.loads(got.split(b"\n", 1)[0])
        check(b"vod_be" not in got and b"relay.example" not in got,
              "the relay-side DSN reached the mock via %s: %r" % (target.decode(), got.split(b"\n", 1)[0]))
        pid = int(recs[0]["path"].split("/")[2])
        want = "http://%s@127.0.0.1:%d/%d" % (KEY_VOD if pid == ID_VOD else KEY_WEB, mock_port, pid)
        check(first.get("dsn") == want, "dsn forwarded as %r, want %r" % (first.get("dsn"), want))


def test_zz_after_the_abuse():
    stack = S["stack"]
    check(stack.sq.alive(), "sentryq died")
    res = S["poll"].stop()
    figure("header_abuse", "; ".join(S["outcomes"]) + "; " + status_summary(res))
    check_status_bound("header_abuse", res)
    valid_request_delivered(stack, "header_abuse")


main(globals())
