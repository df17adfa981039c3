#!/usr/bin/python3
"""test_protocol_edges.py - protocol edges of ingest: store requests without an event, the Vary
header, forward.headers, endpoints added in the config, and how -t refuses bad endpoint entries.

- POST store/ with an empty body (Content-Length 0, chunked, or gzip-labelled) and GET store/
  without a non-empty sentry_data answer 400 {"detail":"empty request body"}, and nothing is
  queued: the route's Redis stream never gets an entry (its last-generated-id stays), the
  enqueued counter stays, and a sentinel event sent afterwards on the same route is the only
  request the upstream sees. GET store/ with sentry_data still answers the 1x1 gif and is forwarded.
- Vary (origin, access-control-request-method, access-control-request-headers) on a success, on
  every kind of ingest error, and on the CORS preflight.
- forward.headers = ("X-Request-Id"): that header reaches the upstream (any case), an unlisted one
  does not; the built-in kept headers arrive, X-Forwarded-For is the client's chain plus the peer,
  Host is the upstream's, a chunked body gets its Content-Length, everything else (hop-by-hop
  included) is dropped.
- endpoints = ( ... ) in the config: integration/vercel/logs/? (POST, 200, empty, log_item) is
  answered, queued (the entry is in Redis with its endpoint and categories while the upstream
  holds the request) and delivered to /api/<real id>/integration/vercel/logs/ with the credentials
  rewritten; a {key} endpoint taking PUT (201, reply id) is forwarded with its method and the path
  key rewritten.
- sentryq -t refuses bad endpoint entries (a bad pattern, a bad method, an unknown category, a
  status of 300, ...) and bad forward.headers names with FILE:LINE and the key.

Config: upstream "wow" with vod_be (rule 1: key wow + secret vod_be -> real id 20) and web
(rule 2: key wow + path id 1).
"""

import gzip
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id  # noqa: E402
from sqtest.http import (  # noqa: E402
    check_cors, check_preflight, expect_json_error, header_tokens, parse_sentry_auth, request)
from sqtest.mock import Mock, rec_body, rec_header  # noqa: E402
from sqtest.proc import check, free_port, tmpdir, wait_for  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import (  # noqa: E402
    AUTH_VOD, ID_VOD, ID_WEB, KEY_VOD, KEY_WEB, SEC_VOD, Sentryq, make_config, run_cli, standard_upstreams,
    status_counters)

PREFIX = "sentryq-edges:"
STREAM_VOD = PREFIX + "q:wow:vod_be"
VARY = {"origin", "access-control-request-method", "access-control-request-headers"}
Q_VOD = "sentry_key=wow&sentry_secret=vod_be&sentry_version=7"
ENDPOINTS = """
endpoints = (
  { name = "vercel_logs"; path = "integration/vercel/logs/?"; methods = ( "POST" ); status = 200;
    reply = "empty"; categories = ( "log_item" ); },
  { name = "hook"; path = "integration/hook/{key}/?"; methods = ( "POST", "PUT" ); status = 201;
    reply = "id"; body_required = false; }
);
"""
S = {}


def setup_module():
    S["redis"] = Redis().start()
    S["mock"] = Mock().start()
    S["port"] = free_port()
    cfg = make_config(S["port"], S["redis"].port, standard_upstreams(S["mock"].url), prefix=PREFIX,
                      forward_extra='headers = ( "X-Request-Id" );', extra=ENDPOINTS)
    S["sq"] = Sentryq().start(cfg, S["port"])


def teardown_module():
    if "sq" in S:
        S["sq"].stop()


# ------------------------------------------------------------ helpers

def fresh():
    wait_for(lambda: S["sq"].status()[1]["queue"]["pending"] == 0, 15, "the queue to drain between cases")
    S["mock"].reset()


def stream_state(key=STREAM_VOD):
    """(length, last-generated-id) of a route's stream: the id moves with every XADD, even one
    whose entry was delivered and deleted since."""
    info = S["redis"].command("XINFO", "STREAM", key)
    d = dict(zip(info[::2], info[1::2]))
    return d[b"length"], d[b"last-generated-id"]


def store_body(eid):
    return json.dumps({"event_id": eid, "message": "edge \u00e9", "level": "error"}).encode()


def post(target, body, headers=(), method="POST", chunked=False):
    return request(S["port"], method, target, list(headers), body, chunked=chunked)


def expect_empty_body_400(r, what):
    doc = expect_json_error(r, 400, what)
    check(doc == {"detail": "empty request body"}, "%s: answer %r" % (what, r.body))
    check_vary(r, what)


def check_vary(r, what):
    vals = [v for k, v in r.headers if k.lower() == "vary"]
    check(len(vals) == 1 and header_tokens(vals[0]) == VARY, "%s: Vary %r, want one with %s" % (
        what, vals, sorted(VARY)))


def expect_nothing_queued(before, c0, what):
    """No entry was added to the route's stream, the enqueued counter did not move, and a
    sentinel event on the same route is the only request the upstream gets."""
    check(stream_state() == before, "%s: the stream changed: %r -> %r" % (what, before, stream_state()))
    c1 = status_counters(S["sq"])
    check(c1["enqueued"] == c0["enqueued"], "%s: enqueued +%d" % (what, c1["enqueued"] - c0["enqueued"]))
    eid = new_event_id()
    r = post("/api/1/store/", store_body(eid), [("Content-Type", "application/json"), ("X-Sentry-Auth", AUTH_VOD)])
    check(r.status == 200 and r.json() == {"id": eid}, "%s: the sentinel answered %r" % (what, r))
    S["mock"].wait_count(1, 15)
    wait_for(lambda: S["sq"].status()[1]["queue"]["pending"] == 0, 15, "the sentinel to be delivered")
    recs = S["mock"].requests()
    check(len(recs) == 1 and eid.encode() in rec_body(recs[0]), "%s: the upstream got %r, want only the sentinel" % (
        what, [(x["method"], x["path"], rec_body(x)[:60]) for x in recs]))


# ------------------------------------------------------------ store without an event

def test_store_post_empty_body_400_nothing_queued():
    fresh()
    before, c0 = stream_state(), status_counters(S["sq"])
    hdrs = [("Content-Type", "application/json"), ("X-Sentry-Auth", AUTH_VOD)]
    expect_empty_body_400(post("/api/1/store/", b"", hdrs), "store POST, Content-Length: 0")
    expect_empty_body_400(post("/api/1/store/", b"", hdrs, chunked=True), "store POST, chunked, no chunk")
    expect_empty_body_400(post("/api/1/store/", b"", hdrs + [("Content-Encoding", "gzip")]),
                          "store POST, empty, Content-Encoding gzip")
    expect_empty_body_400(post("/api/1/store/?" + Q_VOD, b"", [("Content-Type", "application/json")]),
                          "store POST, empty, query auth")
    expect_nothing_queued(before, c0, "empty store POST")


def test_store_get_without_sentry_data_400_nothing_queued():
    fresh()
    before, c0 = stream_state(), status_counters(S["sq"])
    for query in (Q_VOD, Q_VOD + "&sentry_data=", "sentry_data=&" + Q_VOD, Q_VOD + "&sentry_data",
                  Q_VOD + "&xsentry_data=%7B%7D", Q_VOD + "&sentry_data=&other=1"):
        expect_empty_body_400(post("/api/1/store/?" + query, b"", method="GET"), "store GET ?%s" % query)
    expect_nothing_queued(before, c0, "store GET without sentry_data")


def test_store_get_with_sentry_data_still_gif():
    fresh()
    before = stream_state()
    data = urllib.parse.quote(json.dumps({"event_id": new_event_id(), "message": "beacon"}), safe="")
    query = Q_VOD + "&sentry_data=" + data
    r = post("/api/1/store/?" + query, b"", method="GET")
    check(r.status == 200 and r.header("Content-Type") == "image/gif" and r.body.startswith(b"GIF89a"),
          "store GET with sentry_data answered %r %r" % (r, r.header("Content-Type")))
    check_vary(r, "store GET gif")
    check(stream_state()[1] != before[1], "the store GET was not queued")
    rec = S["mock"].wait_count(1, 15)[0]
    want_q = query.replace("sentry_key=wow", "sentry_key=" + KEY_VOD).replace(
        "sentry_secret=vod_be", "sentry_secret=" + SEC_VOD)
    check(rec["method"] == "GET" and rec["path"] == "/api/%d/store/" % ID_VOD and rec["query"] == want_q,
          "forwarded %s %s ?%s" % (rec["method"], rec["path"], rec["query"]))


# ------------------------------------------------------------ Vary

def test_vary_on_success_error_and_preflight():
    fresh()
    eid = new_event_id()
    r = post("/api/1/store/", store_body(eid), [("Content-Type", "application/json"), ("X-Sentry-Auth", AUTH_VOD)])
    check(r.status == 200, "store POST answered %r" % r)
    check_vary(r, "store 200")
    r = post("/api/5/integration/otlp/v1/logs", b'{"resourceLogs":[]}', [("Content-Type", "application/json"),
                                                                       ("X-Sentry-Auth", AUTH_VOD)])
    check(r.status == 202, "OTLP logs answered %r" % r)
    check_vary(r, "OTLP 202")
    errors = [
        (400, post("/api/1/envelope/", b"", [("X-Sentry-Auth", AUTH_VOD)])),
        (401, post("/api/1/store/", store_body(eid), [("Content-Type", "application/json")])),
        (403, post("/api/1/store/", store_body(eid), [("X-Sentry-Auth", "Sentry sentry_key=nobody, sentry_version=7")])),
        (404, post("/api/1/not-an-endpoint/", b"x", [("X-Sentry-Auth", AUTH_VOD)])),
        (405, post("/api/1/envelope/", b"", [("X-Sentry-Auth", AUTH_VOD)], method="DELETE")),
        (415, post("/api/1/integration/otlp/v1/traces", b"{}", [("X-Sentry-Auth", AUTH_VOD),
                                                              ("Content-Type", "text/plain")])),
        (415, post("/api/1/store/", b"xx", [("X-Sentry-Auth", AUTH_VOD), ("Content-Encoding", "lzma")])),
    ]
    for status, r in errors:
        expect_json_error(r, status, "error %d" % status)
        check_vary(r, "error %d" % status)
    for path in ("/api/1/store/", "/api/1/envelope/", "/api/1/integration/otlp/v1/traces",
                 "/api/1/integration/vercel/logs/"):
        r = post(path, b"", [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST"),
                             ("Access-Control-Request-Headers", "content-type, x-sentry-auth")], method="OPTIONS")
        check_preflight(r, "preflight " + path)
        check_vary(r, "preflight " + path)


# ------------------------------------------------------------ forward.headers and the kept headers

KEPT = [("User-Agent", "edge-test/1.0"), ("Origin", "https://app.example"), ("Referer", "https://app.example/p?q=1"),
        ("sentry-trace", "771a43a4192642f0b136d5159a501700-b6d5159a50170000-1"),
        ("baggage", "sentry-trace_id=771a43a4192642f0b136d5159a501700,sentry-public_key=wow"),
        ("Sec-CH-UA", '"Chromium";v="130", "Not?A_Brand";v="99"'), ("Sec-CH-UA-Mobile", "?0"),
        ("Sec-CH-UA-Platform", '"Linux"'), ("Accept-Language", "fr-CH, fr;q=0.9, en;q=0.8")]
DROPPED = [("X-Tenant", "tenant-7"), ("Cookie", "session=abc"), ("X-Real-IP", "198.51.100.9"),
           ("Accept", "*/*"), ("Keep-Alive", "timeout=5"), ("Proxy-Authorization", "Basic eDp5"),
           ("X-Sentry-Forwarded-For", "1.2.3.4"), ("TE", "trailers"), ("Connection", "keep-alive"),
           ("Upgrade-Insecure-Requests", "1")]


def test_forward_headers_listed_one_kept_unlisted_dropped():
    fresh()
    bodies = []
    for name, chunked in (("X-Request-Id", False), ("x-request-id", True)):
        eid = new_event_id()
        body = store_body(eid)
        bodies.append(body)
        hdrs = ([("Content-Type", "application/json"), ("X-Sentry-Auth", AUTH_VOD), (name, "req-%s" % eid[:8]),
                 ("X-Forwarded-For", "203.0.113.7, 192.0.2.1")] + KEPT + DROPPED)
        r = post("/api/1/store/", body, hdrs, chunked=chunked)
        check(r.status == 200, "store with extra headers answered %r" % r)
    recs = S["mock"].wait_count(2, 15)
    check(len(recs) == 2, "upstream got %d requests" % len(recs))
    for rec in recs:
        body = rec_body(rec)
        eid = json.loads(body)["event_id"]
        rid = [v for k, v in rec["headers"] if k.lower() == "x-request-id"]
        check(rid == ["req-%s" % eid[:8]], "X-Request-Id upstream %r (headers %r)" % (rid, rec["headers"]))
        for k, v in KEPT:
            check(rec_header(rec, k) == [v], "kept header %s upstream %r, sent %r" % (k, rec_header(rec, k), v))
        for k, _ in DROPPED:
            check(not rec_header(rec, k), "unlisted header %s reached the upstream: %r" % (k, rec_header(rec, k)))
        check(rec_header(rec, "X-Forwarded-For") == ["203.0.113.7, 192.0.2.1, 127.0.0.1"],
              "X-Forwarded-For upstream %r" % rec_header(rec, "X-Forwarded-For"))
        check(rec_header(rec, "Host") == ["127.0.0.1:%d" % S["mock"].port], "Host upstream %r" % rec_header(rec, "Host"))
        check(rec_header(rec, "Content-Length") == [str(len(body))] and not rec_header(rec, "Transfer-Encoding"),
              "framing upstream: Content-Length %r, Transfer-Encoding %r (one was sent chunked)" % (
                  rec_header(rec, "Content-Length"), rec_header(rec, "Transfer-Encoding")))
        xsa = dict(parse_sentry_auth(rec_header(rec, "X-Sentry-Auth")[0]))
        check(xsa.get("sentry_key") == KEY_VOD and xsa.get("sentry_secret") == SEC_VOD, "auth upstream %r" % xsa)
        allowed = {k.lower() for k, _ in KEPT} | {"x-request-id", "x-forwarded-for", "host", "content-length",
                                                 "content-type", "x-sentry-auth"}
        extra = [k for k, _ in rec["headers"] if k.lower() not in allowed]
        check(not extra, "headers upstream beyond the kept, listed and added ones: %r" % extra)
    check(sorted(rec_body(x) for x in recs) == sorted(bodies), "bodies changed")


# ------------------------------------------------------------ endpoints from the config

def entry_fields(key=STREAM_VOD):
    out = []
    for _id, flat in S["redis"].command("XRANGE", key, "-", "+") or []:
        out.append(dict(zip(flat[::2], flat[1::2])))
    return out


def test_config_endpoint_vercel_queued_and_delivered():
    fresh()
    c0 = status_counters(S["sq"])
    # The upstream holds the first request (then drops it): the entry must be in Redis meanwhile.
    S["mock"].program(rules=[{"path_contains": "/integration/vercel/logs", "method": "POST",
                              "responses": [{"stall": 2, "count": 1}, {"status": 200}]}])
    body = json.dumps([{"id": "1573817187330377061717300000", "message": "vercel log \u00e9", "source": "lambda",
                        "timestamp": 1573817187330}]).encode()
    hdrs = [("Content-Type", "application/json"), ("X-Sentry-Auth", AUTH_VOD)]
    r = post("/api/5/integration/vercel/logs/", body, hdrs)
    check(r.status == 200 and r.body == b"", "vercel logs answered %r, want 200 empty" % r)
    check_cors(r, "config endpoint 200")
    check_vary(r, "config endpoint 200")
    S["mock"].wait_count(1, 15)  # the first attempt is being held
    ents = entry_fields()
    check(len(ents) == 1, "entries in the stream while the upstream holds the request: %d" % len(ents))
    e = ents[0]
    check(e.get(b"m") == b"POST" and e.get(b"e") == b"integration/vercel/logs/" and e.get(b"b") == body,
          "queued entry m=%r e=%r, body %s" % (e.get(b"m"), e.get(b"e"), "same" if e.get(b"b") == body else "changed"))
    check(e.get(b"cat") == b"log_item", "queued entry categories %r, want log_item" % e.get(b"cat"))
    rec = wait_for(lambda: next((x for x in S["mock"].requests() if x["status"] == 200), None), 20,
                   "the retried vercel delivery answered 200")
    check(rec["method"] == "POST" and rec["path"] == "/api/%d/integration/vercel/logs/" % ID_VOD and rec["query"] == "",
          "forwarded to %s %s ?%s" % (rec["method"], rec["path"], rec["query"]))
    check(rec_body(rec) == body and rec_header(rec, "Content-Type") == ["application/json"], "body or type changed")
    xsa = rec_header(rec, "X-Sentry-Auth")
    check(len(xsa) == 1 and dict(parse_sentry_auth(xsa[0])) == {
        "sentry_key": KEY_VOD, "sentry_version": "7", "sentry_client": "proto-test/1.0", "sentry_secret": SEC_VOD},
        "X-Sentry-Auth upstream %r" % xsa)
    # Without the trailing slash, query carrier: the same, in the query.
    r = post("/api/5/integration/vercel/logs?" + Q_VOD, body, [("Content-Type", "application/json")])
    check(r.status == 200 and r.body == b"", "vercel logs (no slash) answered %r" % r)
    rec = wait_for(lambda: next((x for x in S["mock"].requests() if x["query"]), None), 15, "the query delivery")
    check(rec["path"] == "/api/%d/integration/vercel/logs" % ID_VOD and
          rec["query"] == "sentry_key=%s&sentry_secret=%s&sentry_version=7" % (KEY_VOD, SEC_VOD) and
          not rec_header(rec, "X-Sentry-Auth"), "forwarded to %s ?%s" % (rec["path"], rec["query"]))
    # Its methods and body rule hold.
    expect_json_error(post("/api/5/integration/vercel/logs/", b"", hdrs, method="PUT"), 405, "PUT vercel logs")
    expect_json_error(post("/api/5/integration/vercel/logs/", b"", hdrs), 400, "empty vercel logs")
    wait_for(lambda: S["sq"].status()[1]["queue"]["pending"] == 0, 15, "the vercel entries to be delivered")
    c1 = status_counters(S["sq"])
    check(c1["enqueued"] - c0["enqueued"] == 2, "enqueued +%d, want 2" % (c1["enqueued"] - c0["enqueued"]))


def test_config_endpoint_path_key_and_put_kept():
    """A {key} endpoint: the path key is the credential and is rewritten; a PUT is forwarded as a
    PUT (the config allows GET, POST, PUT and PATCH), with the configured 201 and id reply."""
    fresh()
    body = b'{"hook":"deploy \xc3\xa9"}'
    r = post("/api/1/integration/hook/wow/", body, [("Content-Type", "application/json")], method="PUT")
    check(r.status == 201 and set(r.json()) == {"id"} and re.match(r"^[0-9a-f]{32}$", r.json()["id"]),
          "PUT hook answered %r" % r)
    r2 = post("/api/1/integration/hook/wow", b"", [], method="POST")
    check(r2.status == 201, "empty POST hook (body_required = false) answered %r" % r2)
    recs = S["mock"].wait_count(2, 15)
    by_method = {x["method"]: x for x in recs}
    check(sorted(by_method) == ["POST", "PUT"], "methods upstream %r, want POST and PUT" % [x["method"] for x in recs])
    put = by_method["PUT"]
    check(put["path"] == "/api/%d/integration/hook/%s/" % (ID_WEB, KEY_WEB) and rec_body(put) == body and
          put["query"] == "" and not rec_header(put, "X-Sentry-Auth"),
          "PUT forwarded to %s ?%s" % (put["path"], put["query"]))
    check(by_method["POST"]["path"] == "/api/%d/integration/hook/%s" % (ID_WEB, KEY_WEB),
          "POST forwarded to %s" % by_method["POST"]["path"])


# ------------------------------------------------------------ -t on bad entries

BASE = """\
listen = { address = "127.0.0.1"; port = %d; };
redis = { host = "127.0.0.1"; port = 6379; };
forward = {
  headers = ( %s );
};
upstreams = (
  { name = "wow"; url = "http://127.0.0.1:9001";
    projects = ( { name = "vod_be"; key = "a6f431e198734105aef464f6e702351f"; id = 20; } ); }
);
endpoints = (
  { name = "ok_one";
    path = "integration/ok/?";
    methods = ( "POST" );
  },
  { name = "vercel_logs";
    path = %s;
    methods = ( %s );
    status = %s;
    reply = %s;
    categories = ( %s );
  }
);
"""
GOOD = dict(headers='"X-Request-Id"', path='"integration/vercel/logs/?"', methods='"POST"', status="200",
            reply='"empty"', categories='"log_item"')


def conf_text(**over):
    v = dict(GOOD, **over)
    return BASE % (free_port(), v["headers"], v["path"], v["methods"], v["status"], v["reply"], v["categories"])


def test_check_refuses_bad_endpoint_entries():
    d = tmpdir("sentryq-edges-cli-")
    path = os.path.join(d, "edges.conf")
    with open(path, "w") as f:
        f.write(conf_text())
    p = run_cli(["-t", "-c", path])
    check(p.returncode == 0, "-t on the good endpoints config exited %r: %r" % (p.returncode, p.stderr))
    cases = [
        ("path", '"/integration/vercel"', "endpoints[1].path", "not starting with '/'"),
        ("path", '"integration/ver?cel"', "endpoints[1].path", "'?'"),
        ("path", '"integration/{id}/logs"', "endpoints[1].path", "{key}"),
        ("path", '"integration/a*b"', "endpoints[1].path", "'*'"),
        ("path", '"integration//logs"', "endpoints[1].path", '"//"'),
        ("methods", '"DELETE"', "endpoints[1].methods", "DELETE"),
        ("methods", '"post"', "endpoints[1].methods", "post"),
        ("categories", '"spans"', "endpoints[1].categories", "spans"),
        ("status", "300", "endpoints[1].status", "200 and 299"),
        ("status", "199", "endpoints[1].status", "200 and 299"),
        ("reply", '"json"', "endpoints[1].reply", "empty"),
        ("headers", '"Host"', "forward.headers", "Host"),
        ("headers", '"X-Forwarded-For"', "forward.headers", "X-Forwarded-For"),
        ("headers", '"Bad Header"', "forward.headers", "header name"),
    ]
    for i, (field, value, key, also) in enumerate(cases):
        text = conf_text(**{field: value})
        name = "bad-%d.conf" % i
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        line = next(n for n, ln in enumerate(text.splitlines(), 1)
                    if ln.strip().startswith(field + " =") and value in ln)
        p = run_cli(["-t", "-c", path])
        msg = p.stderr + p.stdout
        what = "%s = %s" % (field, value)
        check(p.returncode == 1, "-t with %s exited %r, want 1: %r" % (what, p.returncode, msg))
        check(re.search(re.escape(name) + ":%d: " % line, msg), "-t with %s: no %s:%d in %r" % (what, name, line, msg))
        # a list's key, or the element of it that is wrong ("methods[0]")
        check(re.search(r"key '%s(\[\d+\])?'" % re.escape(key), msg),
              "-t with %s: the message does not name key %r: %r" % (what, key, msg))
        check(also in msg, "-t with %s: the message lacks %r: %r" % (what, also, msg))


if __name__ == "__main__":
    main(globals())
