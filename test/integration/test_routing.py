#!/usr/bin/python3
"""test_routing.py - routing rules 1-4 end to end, their precedence, and 403 for unknown credentials.

Config: upstream "wow" (vod_be: real secret; web: no secret, real id 1), upstream "other" at
path prefix /sentry (keyonly: real key KEY_ONLY, id 77; shadow: real key = HEXUP, id 88), and an
upstream whose name HEXUP is also shadow's real key (p5, id 5), to pit rule 2 against rule 3.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id, split_envelope  # noqa: E402
from sqtest.http import parse_sentry_auth, query_pairs, request  # noqa: E402
from sqtest.mock import Mock, rec_body, rec_header  # noqa: E402
from sqtest.proc import check, free_port, wait_for  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq, make_config, project_conf, status_counters, upstream_conf  # noqa: E402

KEY_VOD, SEC_VOD = "a6f431e198734105aef464f6e702351f", "563b78f7bc1941828df0e5ebd79cc17a"
KEY_WEB = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
KEY_ONLY, SEC_ONLY = "0123456789abcdef0123456789abcdef", "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
HEXUP = "fedcba9876543210fedcba9876543210"
KEY_P5, SEC_P5 = "e0e1e2e3e4e5e6e7e8e9eaebecedeeef", "9f9e9d9c9b9a99989796959493929190"
SDK_SECRET = "sdk-side-secret-must-not-leak-42"

S = {}


def upstreams(m):
    return [
        upstream_conf("wow", m.url, [project_conf("vod_be", KEY_VOD, 20, SEC_VOD),
                                     project_conf("web", KEY_WEB, 1)]),
        upstream_conf("other", m.url + "/sentry", [project_conf("keyonly", KEY_ONLY, 77, SEC_ONLY),
                                                   project_conf("shadow", HEXUP, 88)]),
        upstream_conf(HEXUP, m.url + "/hexup", [project_conf("p5", KEY_P5, 5, SEC_P5)]),
    ]


def setup_module():
    S["redis"] = Redis().start()
    S["mock"] = Mock().start()
    S["port"] = free_port()
    S["sq"] = Sentryq().start(make_config(S["port"], S["redis"].port, upstreams(S["mock"])),
                              S["port"])


def teardown_module():
    for k in ("sq", "sq2"):
        if k in S:
            S[k].stop()


def auth_header(key, secret=None, version=7, client="routing-test/1.0"):
    v = "Sentry sentry_key=%s, sentry_version=%d, sentry_client=%s" % (key, version, client)
    if secret:
        v += ", sentry_secret=%s" % secret
    return v


def store_body(eid):
    return json.dumps({"event_id": eid, "message": "routing test", "level": "info",
                       "platform": "python", "extra": {"text": "\u4e2d\u6587"}},
                      ensure_ascii=False).encode()


def send_store(path, key=None, secret=None, query="", port=None, headers=()):
    """Plain-JSON store; returns (event id, response)."""
    eid = new_event_id()
    hdrs = [("Content-Type", "application/json"), ("User-Agent", "routing-test/1.0")] + list(headers)
    if key is not None:
        hdrs.append(("X-Sentry-Auth", auth_header(key, secret)))
    target = path + ("?" + query if query else "")
    return eid, request(port or S["port"], "POST", target, hdrs, store_body(eid))


def record_for(eid, timeout=15):
    """The mock record whose body carries eid (store JSON or envelope header)."""
    def find():
        for rec in S["mock"].requests():
            if eid.encode() in rec_body(rec):
                return rec
        return None
    return wait_for(find, timeout, "event %s at the upstream" % eid)


def expect_routed(eid, resp, path, key, secret=None, query=None):
    check(resp.status == 200, "answered %r" % resp)
    check(resp.json().get("id") == eid, "answer id %r, want the event's own id %s" % (resp.body, eid))
    rec = record_for(eid)
    check(rec["path"] == path, "forwarded to %r, want %r" % (rec["path"], path))
    if query is None:
        xsa = rec_header(rec, "X-Sentry-Auth")
        check(len(xsa) == 1, "X-Sentry-Auth upstream %r" % xsa)
        d = dict(parse_sentry_auth(xsa[0]))
        check(d.get("sentry_key") == key, "sentry_key %r, want %r" % (d.get("sentry_key"), key))
        check(d.get("sentry_secret") == secret, "sentry_secret %r, want %r" % (d.get("sentry_secret"), secret))
        check(d.get("sentry_version") == "7" and d.get("sentry_client") == "routing-test/1.0",
              "other auth fields not kept: %r" % xsa[0])
        check("sentry_" not in rec["query"], "second carrier in query %r" % rec["query"])
    else:
        check(rec["query"] == query, "query %r, want %r" % (rec["query"], query))
        check(not rec_header(rec, "X-Sentry-Auth"), "second carrier X-Sentry-Auth added")
    check(rec_body(rec) == store_body(eid) or b"\n" in rec_body(rec), "store body changed")
    for h in rec_header(rec, "X-Sentry-Auth") + [rec["query"]]:
        check(SDK_SECRET not in h and "sentry_secret=vod_be" not in h,
              "relay-side secret leaked upstream: %r" % h)
    return rec


# ------------------------------------------------------------ rules

def test_rule1_key_upstream_secret_project():
    eid, r = send_store("/api/1/store/", "wow", "vod_be")
    expect_routed(eid, r, "/api/20/store/", KEY_VOD, SEC_VOD)


def test_rule1_project_without_secret_sends_none():
    eid, r = send_store("/api/999/store/", "wow", "web")
    expect_routed(eid, r, "/api/1/store/", KEY_WEB, None)


def test_rule2_key_upstream_path_id():
    eid, r = send_store("/api/1/store/", "wow")
    expect_routed(eid, r, "/api/1/store/", KEY_WEB, None)


def test_rule2_query_carrier_envelope_with_dsn():
    """Query carrier, key only: sentry_key swapped in place, other params raw and in order;
    an envelope header dsn in the body is rewritten too."""
    eid = new_event_id()
    hdr = {"event_id": eid, "dsn": "http://wow@relay.example:9000/1", "sdk": {"name": "t", "version": "1"},
           "trace": {"public_key": "wow", "trace_id": "0" * 32}}
    rest = b'{"type":"event","length":16}\n{"message":"hi!"}\n'
    body = json.dumps(hdr).encode() + b"\n" + rest
    q = "sentry_version=7&sentry_key=wow&sentry_client=sentry.javascript.browser%2F11.12.0"
    r = request(S["port"], "POST", "/api/1/envelope/?" + q, [("Content-Type", "text/plain;charset=UTF-8")],
                body)
    check(r.status == 200 and r.json().get("id") == eid, "answered %r" % r)
    rec = record_for(eid)
    check(rec["path"] == "/api/1/envelope/", "path %r" % rec["path"])
    check(rec["query"] == q.replace("sentry_key=wow", "sentry_key=" + KEY_WEB), "query %r" % rec["query"])
    check(not rec_header(rec, "X-Sentry-Auth"), "second carrier X-Sentry-Auth added")
    g_hdr, g_rest = split_envelope(rec_body(rec))
    check(g_rest == rest, "envelope items changed")
    g = json.loads(g_hdr)
    want = "http://%s@127.0.0.1:%d/1" % (KEY_WEB, S["mock"].port)
    check(g["dsn"] == want, "dsn %r, want %r" % (g["dsn"], want))
    check(g["trace"]["public_key"] == KEY_WEB, "trace.public_key %r" % g["trace"]["public_key"])


def test_foreign_trace_public_key_kept():
    """trace.public_key is mapped only when it is the key the SDK used; any other stays."""
    eid = new_event_id()
    hdr = ('{"event_id":"%s","trace":{"public_key":"f00df00df00df00df00df00df00df00d",'
           '"trace_id":"%s"}}' % (eid, "1" * 32)).encode()
    rest = b'{"type":"event"}\n{"message":"x"}'
    q = "sentry_key=wow&sentry_version=7"
    r = request(S["port"], "POST", "/api/1/envelope/?" + q, [], hdr + b"\n" + rest)
    check(r.status == 200 and r.json().get("id") == eid, "answered %r" % r)
    rec = record_for(eid)
    g_hdr, g_rest = split_envelope(rec_body(rec))
    check(g_rest == rest, "envelope items changed")
    check(json.loads(g_hdr) == json.loads(hdr), "header changed: %r" % g_hdr)


def test_rule3_real_key_with_sdk_secret():
    """Real key: routed by the key; the SDK sent a secret and the project has one -> real secret."""
    eid, r = send_store("/api/42/store/", KEY_ONLY, SDK_SECRET)
    expect_routed(eid, r, "/sentry/api/77/store/", KEY_ONLY, SEC_ONLY)


def test_rule3_real_key_without_secret():
    eid, r = send_store("/api/42/store/", KEY_ONLY)
    expect_routed(eid, r, "/sentry/api/77/store/", KEY_ONLY, None)


def test_rule3_query_carrier():
    q = "sentry_key=%s&sentry_version=7" % KEY_ONLY
    eid, r = send_store("/api/42/store/", query=q)
    expect_routed(eid, r, "/sentry/api/77/store/", KEY_ONLY, query=q)


def test_query_secret_never_forwarded_as_sent():
    """Query with key + relay-side secret (rule 1): sentry_key swapped; the relay-side secret
    never goes upstream (real secret or nothing)."""
    q = "sentry_key=wow&sentry_secret=vod_be&sentry_version=7"
    eid, r = send_store("/api/1/store/", query=q)
    check(r.status == 200, "answered %r" % r)
    rec = record_for(eid)
    check(rec["path"] == "/api/20/store/", "path %r" % rec["path"])
    pairs = query_pairs(rec["query"])
    check([k for k, _ in pairs if k != "sentry_secret"] == ["sentry_key", "sentry_version"],
          "query params %r" % rec["query"])
    d = dict(pairs)
    check(d["sentry_key"] == KEY_VOD, "sentry_key %r" % d["sentry_key"])
    check(d.get("sentry_secret") in (None, SEC_VOD), "sentry_secret %r" % d.get("sentry_secret"))
    check(not rec_header(rec, "X-Sentry-Auth"), "second carrier X-Sentry-Auth added")


# ------------------------------------------------------------ precedence

def test_rule1_beats_rule2():
    """Key wow + secret vod_be at path id 1 (web's id): rule 1 wins -> vod_be (20)."""
    eid, r = send_store("/api/1/store/", "wow", "vod_be")
    expect_routed(eid, r, "/api/20/store/", KEY_VOD, SEC_VOD)


def test_rule2_beats_rule3():
    """HEXUP names an upstream and is shadow's real key: path id 5 -> rule 2 (p5)."""
    eid, r = send_store("/api/5/store/", HEXUP)
    expect_routed(eid, r, "/hexup/api/5/store/", KEY_P5, None)


def test_rule3_when_rule2_id_misses():
    eid, r = send_store("/api/6/store/", HEXUP)
    expect_routed(eid, r, "/sentry/api/88/store/", HEXUP, None)


def test_rule1_beats_rule3():
    eid, r = send_store("/api/6/store/", HEXUP, "p5")
    expect_routed(eid, r, "/hexup/api/5/store/", KEY_P5, SEC_P5)


# ------------------------------------------------------------ no match

def expect_403(resp, secret=None):
    check(resp.status == 403, "want 403, got %r" % resp)
    doc = resp.json()
    check(isinstance(doc.get("detail"), str) and doc["detail"], "403 body lacks detail: %r" % resp.body)
    if secret:
        check(secret not in resp.body.decode("utf-8", "replace"), "403 body echoes the secret: %r" % resp.body)
    return doc


def test_unknown_credentials_403():
    sq = S["sq"]
    c0 = status_counters(sq)
    n0 = S["mock"].count()
    _, r = send_store("/api/1/store/", "nobody")
    doc = expect_403(r)
    check("nobody" in doc["detail"], "detail %r does not name the unmatched key" % doc["detail"])
    _, r = send_store("/api/1/store/", "wow", SDK_SECRET)  # secret names no project, so rule 2 is out
    expect_403(r, SDK_SECRET)
    _, r = send_store("/api/999/store/", "wow")  # no secret, id of no project
    expect_403(r)
    _, r = send_store("/api/1/store/", "nobody", SDK_SECRET)
    expect_403(r, SDK_SECRET)
    _, r = send_store("/api/1/store/", query="sentry_key=nobody&sentry_secret=%s" % SDK_SECRET)
    expect_403(r, SDK_SECRET)
    eid, r = send_store("/api/1/store/", "wow")  # sentinel: arrives, the rejected ones did not
    check(r.status == 200, "sentinel answered %r" % r)
    record_for(eid)
    recs = S["mock"].requests()[n0:]
    check(len(recs) == 1, "upstream got %d requests, want only the sentinel" % len(recs))
    c1 = status_counters(sq)
    check(c1["rejected"] - c0["rejected"] == 5, "rejected moved by %d, want 5" % (c1["rejected"] - c0["rejected"]))
    check(c1["enqueued"] - c0["enqueued"] == 1, "enqueued moved by %d, want 1" % (c1["enqueued"] - c0["enqueued"]))


def test_tunnel_unknown_dsn_403():
    hdr = {"event_id": new_event_id(), "dsn": "http://nobody@127.0.0.1:1/1"}
    body = json.dumps(hdr).encode() + b'\n{"type":"event"}\n{}'
    r = request(S["port"], "POST", "/tunnel", [("Content-Type", "text/plain;charset=UTF-8")], body)
    expect_403(r)


def test_x_forwarded_for_chain():
    eid, r = send_store("/api/1/store/", "wow", "vod_be",
                        headers=[("X-Forwarded-For", "198.51.100.1, 10.0.0.1")])
    rec = expect_routed(eid, r, "/api/20/store/", KEY_VOD, SEC_VOD)
    xff = rec_header(rec, "X-Forwarded-For")
    check(xff == ["198.51.100.1, 10.0.0.1, 127.0.0.1"], "X-Forwarded-For %r" % xff)


# ------------------------------------------------------------ rule 4

def start_with_default_route():
    if "sq2" not in S:
        port = free_port()
        cfg = make_config(port, S["redis"].port, upstreams(S["mock"]), prefix="sentryq-dr:",
                          extra='default_route = { upstream = "other"; project = "keyonly"; };')
        S["sq2"] = Sentryq().start(cfg, port)
    return S["sq2"].port


def test_default_route_catches_unknown_key():
    port = start_with_default_route()
    eid, r = send_store("/api/1/store/", "nobody", port=port)
    expect_routed(eid, r, "/sentry/api/77/store/", KEY_ONLY, None)
    eid, r = send_store("/api/1/store/", "nobody", SDK_SECRET, port=port)
    expect_routed(eid, r, "/sentry/api/77/store/", KEY_ONLY, SEC_ONLY)


def test_default_route_does_not_override_rules():
    port = start_with_default_route()
    eid, r = send_store("/api/1/store/", "wow", "vod_be", port=port)
    expect_routed(eid, r, "/api/20/store/", KEY_VOD, SEC_VOD)
    eid, r = send_store("/api/1/store/", "wow", port=port)
    expect_routed(eid, r, "/api/1/store/", KEY_WEB, None)


if __name__ == "__main__":
    main(globals())
