#!/usr/bin/python3
"""test_endpoints.py - every Sentry ingest endpoint through sentryq to the mock upstream.

Per endpoint: the success status and body Sentry answers with, the CORS headers, and what the
upstream received (real project id in the path, the path/query/header credential rewritten in the
carrier the client used and no other, body byte-identical, method kept). Also: DSN path prefixes,
the JavaScript tunnel, Authorization: Sentry/Basic, two carriers (401), wrong MIME (415), CORS
preflight on every ingest path, Content-Encoding gzip/deflate/br/zstd, decompression bombs (413,
bounded memory) and the limits.* size limits.

Config: upstream "wow" holds vod_be (rule 1: key wow + secret vod_be -> real id 20) and web
(rule 2: key wow + path id 1). test/lib/sqtest/sentryq.py has the keys.
"""

import base64
import hashlib
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import (  # noqa: E402
    CODECS, UUID_RE, decode, encode, load_fixtures, new_event_id, replay, split_envelope, zeros_bomb)
from sqtest.http import (  # noqa: E402
    check_cors, check_preflight, expect_json_error, parse_sentry_auth, request)
from sqtest.mock import rec_body, rec_header  # noqa: E402
from sqtest.proc import check, free_port, is_sanitized, vm_hwm_kib, wait_for  # noqa: E402
from sqtest.sentryq import WRAPPER  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import (  # noqa: E402
    AUTH_VOD, ID_WEB, KEY_VOD, KEY_WEB, SEC_VOD, Sentryq, make_config, standard_upstreams, start_stack)

S = {}
GIF_1X1_PREFIX = b"GIF89a\x01\x00\x01\x00"


def setup_module():
    start_stack(S)


def teardown_module():
    for k in ("sq", "sq_small"):
        if k in S:
            S[k].stop()


# ------------------------------------------------------------ helpers

def post(target, body, headers=(), method="POST", port=None):
    return request(port or S["port"], method, target, list(headers), body)


def fresh():
    """Start a case on an empty upstream record, after anything an earlier case queued arrived."""
    wait_for(lambda: S["sq"].status()[1]["queue"]["pending"] == 0, 15, "the queue to drain between cases")
    S["mock"].reset()


def store_body(eid, text="endpoint test"):
    return json.dumps({"event_id": eid, "message": text + " \u4e2d\u6587 \u2603", "level": "error",
                       "platform": "python"}, ensure_ascii=False).encode()


def envelope(eid, dsn=None, payload=b'{"message":"hi"}'):
    hdr = {"event_id": eid, "sent_at": "2026-01-01T00:00:00.000Z"}
    if dsn:
        hdr["dsn"] = dsn
    item = json.dumps({"type": "event", "length": len(payload)}).encode()
    return json.dumps(hdr, separators=(",", ":")).encode() + b"\n" + item + b"\n" + payload + b"\n"


def multipart(fields, boundary="----sentryqTestBoundary7MA4YWxkTrZu0gW"):
    """fields: [(name, filename or None, content type or None, bytes)] -> (body, content type)."""
    out = []
    for name, filename, ctype, data in fields:
        disp = 'form-data; name="%s"' % name + ('; filename="%s"' % filename if filename else "")
        out.append(b"--%s\r\nContent-Disposition: %s\r\n" % (boundary.encode(), disp.encode()))
        if ctype:
            out.append(b"Content-Type: %s\r\n" % ctype.encode())
        out.append(b"\r\n" + data + b"\r\n")
    out.append(b"--%s--\r\n" % boundary.encode())
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def minidump_bytes():
    return b"MDMP\x93\xa7\x00\x00" + bytes(range(256)) * 8


def one_record(what, timeout=15):
    """Wait for exactly one forwarded request and return it (no duplicates, no strays)."""
    recs = S["mock"].wait_count(1, timeout)
    check(len(recs) == 1, "%s: upstream got %d requests: %r" % (
        what, len(recs), [(r["method"], r["path"], r["query"]) for r in recs]))
    return recs[0]


def xsa_fields(rec):
    xsa = rec_header(rec, "X-Sentry-Auth")
    check(len(xsa) == 1, "want one X-Sentry-Auth upstream, got %r" % xsa)
    return dict(parse_sentry_auth(xsa[0]))


def expect_forwarded(rec, method, path, body, query="", ctype=None, carrier="query"):
    """The upstream request: method, path, query, body byte-identical, one carrier only."""
    check(rec["method"] == method, "method %r, want %r" % (rec["method"], method))
    check(rec["path"] == path, "path %r, want %r" % (rec["path"], path))
    check(rec["query"] == query, "query %r, want %r" % (rec["query"], query))
    got = rec_body(rec)
    check(got == body, "body changed: %d bytes sent, %d forwarded" % (len(body), len(got)))
    if body:
        check(rec_header(rec, "Content-Length") == [str(len(body))],
              "Content-Length %r" % rec_header(rec, "Content-Length"))
    if ctype is not None:
        check(rec_header(rec, "Content-Type") == [ctype],
              "Content-Type %r, want %r" % (rec_header(rec, "Content-Type"), ctype))
    if carrier != "header":
        check(not rec_header(rec, "X-Sentry-Auth"), "X-Sentry-Auth added: %r" % rec_header(rec, "X-Sentry-Auth"))
    if carrier not in ("authorization",):
        check(not rec_header(rec, "Authorization"), "Authorization added: %r" % rec_header(rec, "Authorization"))
    if carrier != "query":
        check("sentry_key" not in rec["query"], "query carrier added: %r" % rec["query"])
    for v in rec_header(rec, "X-Sentry-Auth") + rec_header(rec, "Authorization") + [rec["query"], rec["path"]]:
        check("vod_be" not in v and "sentry_key=wow" not in v, "relay-side credential forwarded: %r" % v)


def expect_header_rewrite(rec, client="proto-test/1.0"):
    d = xsa_fields(rec)
    check(d.get("sentry_key") == KEY_VOD and d.get("sentry_secret") == SEC_VOD,
          "X-Sentry-Auth not rewritten to the real key/secret: %r" % d)
    check(d.get("sentry_version") == "7" and d.get("sentry_client") == client, "fields lost: %r" % d)


def expect_id_answer(r, eid, what):
    check(r.status == 200, "%s answered %r" % (what, r))
    check((r.header("Content-Type") or "").startswith("application/json"), "%s Content-Type %r" % (
        what, r.header("Content-Type")))
    check(r.json() == {"id": eid}, "%s answer %r, want {\"id\": %s}" % (what, r.body, eid))
    check_cors(r, what)


def expect_empty_answer(r, status, what):
    check(r.status == status, "%s answered %r, want %d" % (what, r, status))
    check(r.body == b"", "%s answer body %r, want empty" % (what, r.body[:200]))
    check_cors(r, what)


def expect_uuid_answer(r, what):
    check(r.status == 200, "%s answered %r" % (what, r))
    check((r.header("Content-Type") or "").startswith("text/plain"), "%s Content-Type %r" % (
        what, r.header("Content-Type")))
    check(UUID_RE.match(r.body.decode("ascii", "replace")),
          "%s answer %r is not a hyphenated uuid" % (what, r.body[:100]))
    check_cors(r, what)


def q(key="wow", extra=""):
    return "sentry_version=7&sentry_key=%s&sentry_client=sentry.javascript.browser%%2F11.12.0%s" % (key, extra)


# ------------------------------------------------------------ store / envelope

def test_store_post_json_id():
    fresh()
    eid = new_event_id()
    body = store_body(eid)
    r = post("/api/1/store/", body, [("Content-Type", "application/json"), ("X-Sentry-Auth", AUTH_VOD)])
    expect_id_answer(r, eid, "store POST")
    rec = one_record("store POST")
    expect_forwarded(rec, "POST", "/api/20/store/", body, ctype="application/json", carrier="header")
    expect_header_rewrite(rec)


def test_store_get_sentry_data_gif():
    fresh()
    data = json.dumps({"event_id": new_event_id(), "message": "beacon \u00e9"})
    query = q(extra="&sentry_data=" + urllib.parse.quote(data, safe=""))
    r = post("/api/1/store/?" + query, b"", method="GET")
    check(r.status == 200, "store GET answered %r" % r)
    check(r.header("Content-Type") == "image/gif", "store GET Content-Type %r" % r.header("Content-Type"))
    check(r.body.startswith(GIF_1X1_PREFIX) and r.body.endswith(b";"),
          "store GET body is not a 1x1 GIF: %r" % r.body[:60])
    check_cors(r, "store GET")
    rec = one_record("store GET")
    want_q = query.replace("sentry_key=wow", "sentry_key=" + KEY_WEB)
    expect_forwarded(rec, "GET", "/api/1/store/", b"", query=want_q)


def test_store_get_long_sentry_data():
    """A beacon carries the whole event in its query: 8 KB of it must be forwarded, not choke
    the request rebuild (it once failed every retry against a fixed 4 KB URL buffer)."""
    fresh()
    data = json.dumps({"event_id": new_event_id(), "message": "x" * 8000})
    query = q(extra="&sentry_data=" + urllib.parse.quote(data, safe=""))
    r = post("/api/1/store/?" + query, b"", method="GET")
    check(r.status == 200, "long store GET answered %r" % r)
    rec = one_record("long store GET")
    want_q = query.replace("sentry_key=wow", "sentry_key=" + KEY_WEB)
    expect_forwarded(rec, "GET", "/api/1/store/", b"", query=want_q)


def test_envelope_query_auth():
    fresh()
    eid = new_event_id()
    body = envelope(eid)
    r = post("/api/1/envelope/?" + q(), body, [("Content-Type", "text/plain;charset=UTF-8")])
    expect_id_answer(r, eid, "envelope POST")
    rec = one_record("envelope")
    expect_forwarded(rec, "POST", "/api/1/envelope/", body, query=q(KEY_WEB), ctype="text/plain;charset=UTF-8")


# ------------------------------------------------------------ minidump / unreal / attachments

def test_minidump_multipart():
    fresh()
    event = json.dumps({"release": "app@1.0", "tags": {"k": "v"}}).encode()
    body, ctype = multipart([("sentry", None, None, event),
                             ("upload_file_minidump", "crash.dmp", "application/octet-stream", minidump_bytes()),
                             ("log.txt", "log.txt", "text/plain", "\u65e5\u5fd7 line\n".encode())])
    r = post("/api/1/minidump/?" + q(), body, [("Content-Type", ctype)])
    expect_uuid_answer(r, "minidump multipart")
    rec = one_record("minidump multipart")
    expect_forwarded(rec, "POST", "/api/1/minidump/", body, query=q(KEY_WEB), ctype=ctype)


def test_minidump_raw_octet_stream_without_slash():
    fresh()
    body = minidump_bytes()
    r = post("/api/1/minidump", body, [("Content-Type", "application/octet-stream"),
                                      ("X-Sentry-Auth", AUTH_VOD)])
    expect_uuid_answer(r, "raw minidump")
    rec = one_record("raw minidump")
    expect_forwarded(rec, "POST", "/api/20/minidump", body, ctype="application/octet-stream", carrier="header")
    expect_header_rewrite(rec)


def test_unreal_path_key_rewritten():
    fresh()
    body = b"CR1\x00" + os.urandom(3000)
    r = post("/api/1/unreal/wow/?UserID=player-7", body, [("Content-Type", "application/octet-stream")])
    expect_uuid_answer(r, "unreal")
    rec = one_record("unreal")
    expect_forwarded(rec, "POST", "/api/1/unreal/%s/" % KEY_WEB, body, query="UserID=player-7",
                     ctype="application/octet-stream", carrier="path")


def test_unreal_real_key_path():
    fresh()
    body = b"CR1\x00" + os.urandom(100)
    r = post("/api/20/unreal/%s/" % KEY_VOD, body, [("Content-Type", "application/octet-stream")])
    expect_uuid_answer(r, "unreal with the real key")
    rec = one_record("unreal real key")
    expect_forwarded(rec, "POST", "/api/20/unreal/%s/" % KEY_VOD, body, carrier="path")


def test_event_attachments_201():
    fresh()
    eid = new_event_id()
    body, ctype = multipart([("att", "dump.bin", "application/octet-stream", os.urandom(1024)),
                             ("log", "log.txt", "text/plain", "\u4e2d\u6587 text\n".encode())])
    r = post("/api/1/events/%s/attachments/" % eid, body, [("Content-Type", ctype), ("X-Sentry-Auth", AUTH_VOD)])
    expect_empty_answer(r, 201, "attachments")
    rec = one_record("attachments")
    expect_forwarded(rec, "POST", "/api/20/events/%s/attachments/" % eid, body, ctype=ctype, carrier="header")
    expect_header_rewrite(rec)


# ------------------------------------------------------------ security / csp / nel

CSP = json.dumps({"csp-report": {"document-uri": "https://example.com/page", "violated-directive": "script-src",
                                 "blocked-uri": "https://evil.example/x.js", "original-policy": "script-src 'self'"}}
                 ).encode()


def test_security_and_csp_report_query_key():
    for ep in ("security", "csp-report"):
        fresh()
        query = "sentry_key=wow&sentry_release=web%401.2.3&sentry_environment=prod"
        r = post("/api/1/%s/?%s" % (ep, query), CSP, [("Content-Type", "application/csp-report")])
        expect_empty_answer(r, 200, ep)
        rec = one_record(ep)
        expect_forwarded(rec, "POST", "/api/1/%s/" % ep, CSP, ctype="application/csp-report",
                         query=query.replace("sentry_key=wow", "sentry_key=" + KEY_WEB))


def test_nel_reports_json():
    fresh()
    body = json.dumps([{"age": 0, "type": "network-error", "url": "https://example.com/",
                        "body": {"type": "http.error", "status_code": 500, "phase": "application"}}]).encode()
    r = post("/api/1/nel/?sentry_key=wow", body, [("Content-Type", "application/reports+json")])
    expect_empty_answer(r, 200, "nel")
    rec = one_record("nel")
    expect_forwarded(rec, "POST", "/api/1/nel/", body, query="sentry_key=" + KEY_WEB,
                     ctype="application/reports+json")


def test_security_and_nel_wrong_mime_415():
    fresh()
    for ep in ("security", "csp-report", "nel"):
        r = post("/api/1/%s/?sentry_key=wow" % ep, CSP, [("Content-Type", "text/plain")])
        expect_json_error(r, 415, "%s with text/plain" % ep)
    r = post("/api/1/security/?sentry_key=wow", CSP, [])
    expect_json_error(r, 415, "security without Content-Type")
    sentinel_then_nothing_else()


# ------------------------------------------------------------ cron

def test_cron_get_path_key():
    for suffix in ("", "/"):
        fresh()
        r = post("/api/1/cron/nightly-job/wow%s?status=ok&duration=1.5" % suffix, b"", method="GET")
        expect_empty_answer(r, 202, "cron GET key%s" % suffix)
        rec = one_record("cron GET")
        expect_forwarded(rec, "GET", "/api/1/cron/nightly-job/%s%s" % (KEY_WEB, suffix), b"",
                         query="status=ok&duration=1.5", carrier="path")


def test_cron_post_without_path_key():
    fresh()
    body = json.dumps({"check_in_id": new_event_id(), "monitor_slug": "nightly-job",
                       "status": "in_progress"}).encode()
    r = post("/api/1/cron/nightly-job/", body, [("Content-Type", "application/json"), ("X-Sentry-Auth", AUTH_VOD)])
    expect_empty_answer(r, 202, "cron POST")
    rec = one_record("cron POST")
    expect_forwarded(rec, "POST", "/api/20/cron/nightly-job/", body, ctype="application/json", carrier="header")
    expect_header_rewrite(rec)
    fresh()
    r = post("/api/1/cron/nightly-job?sentry_key=wow&status=error", b"", method="GET")
    expect_empty_answer(r, 202, "cron GET query key, no slash")
    rec = one_record("cron GET query")
    expect_forwarded(rec, "GET", "/api/1/cron/nightly-job", b"", query="sentry_key=%s&status=error" % KEY_WEB)


# ------------------------------------------------------------ DSN path prefix, tunnel

def test_dsn_path_prefix():
    fresh()
    eid = new_event_id()
    body = store_body(eid)
    r = post("/sentry/api/1/store/", body, [("Content-Type", "application/json"), ("X-Sentry-Auth", AUTH_VOD)])
    expect_id_answer(r, eid, "prefixed store")
    rec = one_record("prefixed store")
    expect_forwarded(rec, "POST", "/api/20/store/", body, ctype="application/json", carrier="header")
    fresh()
    eid = new_event_id()
    body = envelope(eid)
    r = post("/a/b/api/1/envelope/?" + q(), body)
    expect_id_answer(r, eid, "two-segment prefix envelope")
    rec = one_record("prefixed envelope")
    expect_forwarded(rec, "POST", "/api/1/envelope/", body, query=q(KEY_WEB))
    fresh()
    r = post("/sentry/api/1/nel/?sentry_key=wow", b"[]", [("Content-Type", "application/json")])
    expect_empty_answer(r, 200, "prefixed nel")
    expect_forwarded(one_record("prefixed nel"), "POST", "/api/1/nel/", b"[]", query="sentry_key=" + KEY_WEB)


def tunnel_fixtures():
    fxs = [fx for fx in load_fixtures("*-tunnel-*.json")]
    check(len(fxs) >= 6, "expected the node-tunnel-* and browser-tunnel-* fixtures, got %d" % len(fxs))
    return fxs


def test_tunnel_fixtures():
    fresh()
    fxs = tunnel_fixtures()
    for fx in fxs:
        r = replay(fx, S["port"])
        check(r.status == 200, "%s answered %r" % (fx["name"], r))
        hdr = json.loads(split_envelope(fx["body"])[0])
        if "event_id" in hdr:
            check(r.json() == {"id": hdr["event_id"]}, "%s answer %r" % (fx["name"], r.body))
        check_cors(r, fx["name"])
    recs = S["mock"].wait_count(len(fxs))
    check(len(recs) == len(fxs), "upstream got %d requests for %d tunnel envelopes" % (len(recs), len(fxs)))
    by_rest = {hashlib.sha256(split_envelope(rec_body(rc))[1]).hexdigest(): rc for rc in recs}
    want_dsn = "http://%s@127.0.0.1:%d/%d" % (KEY_WEB, S["mock"].port, ID_WEB)
    for fx in fxs:
        s_hdr, s_rest = split_envelope(fx["body"])
        rec = by_rest.get(hashlib.sha256(s_rest).hexdigest())
        check(rec is not None, "%s: items never reached the upstream unchanged" % fx["name"])
        check(rec["method"] == "POST" and rec["path"] == "/api/%d/envelope/" % ID_WEB,
              "%s forwarded to %s %s" % (fx["name"], rec["method"], rec["path"]))
        check(rec["query"] == "", "%s: tunnel forwarded with a query %r" % (fx["name"], rec["query"]))
        check(not rec_header(rec, "X-Sentry-Auth") and not rec_header(rec, "Authorization"),
              "%s: an auth header was added" % fx["name"])
        g = json.loads(split_envelope(rec_body(rec))[0])
        sent = json.loads(s_hdr)
        check(g.get("dsn") == want_dsn, "%s: dsn %r, want %r" % (fx["name"], g.get("dsn"), want_dsn))
        for k in sent:
            if k not in ("dsn", "trace"):
                check(g.get(k) == sent[k], "%s: header field %s changed" % (fx["name"], k))
        check(rec_header(rec, "Content-Length") == [str(len(rec_body(rec)))], "Content-Length wrong")


# ------------------------------------------------------------ Authorization carriers, two carriers

def test_authorization_sentry_header():
    fresh()
    eid = new_event_id()
    body = store_body(eid)
    r = post("/api/1/store/", body, [("Content-Type", "application/json"), ("Authorization", AUTH_VOD)])
    expect_id_answer(r, eid, "Authorization: Sentry")
    rec = one_record("Authorization: Sentry")
    expect_forwarded(rec, "POST", "/api/20/store/", body, carrier="authorization")
    az = rec_header(rec, "Authorization")
    check(len(az) == 1, "Authorization upstream %r" % az)
    d = dict(parse_sentry_auth(az[0]))
    check(d.get("sentry_key") == KEY_VOD and d.get("sentry_secret") == SEC_VOD
          and d.get("sentry_client") == "proto-test/1.0", "Authorization not rewritten: %r" % az[0])


def test_authorization_basic():
    fresh()
    eid = new_event_id()
    body = envelope(eid)
    basic = "Basic " + base64.b64encode(b"wow:vod_be").decode()
    r = post("/api/1/envelope/", body, [("Authorization", basic)])
    expect_id_answer(r, eid, "Authorization: Basic")
    rec = one_record("Authorization: Basic")
    expect_forwarded(rec, "POST", "/api/20/envelope/", body, carrier="authorization")
    az = rec_header(rec, "Authorization")
    check(len(az) == 1 and az[0].startswith("Basic "), "Authorization upstream %r" % az)
    creds = base64.b64decode(az[0][6:]).decode()
    check(creds == "%s:%s" % (KEY_VOD, SEC_VOD), "Basic credentials upstream %r" % creds)


def sentinel_then_nothing_else():
    """After rejected requests: one good store arrives, and it is the only thing upstream."""
    eid = new_event_id()
    r = post("/api/1/store/", store_body(eid), [("X-Sentry-Auth", AUTH_VOD)])
    expect_id_answer(r, eid, "sentinel")
    rec = one_record("sentinel after rejections")
    check(eid.encode() in rec_body(rec), "the only upstream request is not the sentinel")


def test_two_carriers_401():
    fresh()
    eid = new_event_id()
    cases = [
        ("X-Sentry-Auth + Authorization", "/api/1/store/", [("X-Sentry-Auth", AUTH_VOD), ("Authorization", AUTH_VOD)]),
        ("X-Sentry-Auth + query", "/api/1/store/?sentry_key=wow&sentry_version=7", [("X-Sentry-Auth", AUTH_VOD)]),
        ("Authorization Basic + query", "/api/1/envelope/?" + q(),
         [("Authorization", "Basic " + base64.b64encode(b"wow:vod_be").decode())]),
        ("header + sentry_release on security", "/api/1/security/?sentry_release=1.0",
         [("X-Sentry-Auth", AUTH_VOD), ("Content-Type", "application/csp-report")]),
        ("unreal path key + query", "/api/1/unreal/wow/?sentry_key=wow", []),
        ("cron path key + header", "/api/1/cron/job/wow", [("X-Sentry-Auth", AUTH_VOD)]),
    ]
    for what, target, hdrs in cases:
        body = CSP if "security" in target else store_body(eid)
        doc = expect_json_error(post(target, body, hdrs), 401, what)
        check("multiple" in doc["detail"].lower(), "%s: detail %r" % (what, doc["detail"]))
    sentinel_then_nothing_else()


# ------------------------------------------------------------ CORS

INGEST_PATHS = ["/api/1/store/", "/api/1/envelope/", "/api/1/minidump/", "/api/1/minidump",
                "/api/1/unreal/wow/", "/api/1/security/", "/api/1/csp-report/", "/api/1/nel/",
                "/api/1/events/%s/attachments/" % ("ab" * 16), "/api/1/cron/job/wow", "/api/1/cron/job/",
                "/tunnel", "/sentry/api/1/envelope/"]


def test_cors_preflight_every_ingest_path():
    fresh()
    for path in INGEST_PATHS:
        r = post(path + "?" + q(), b"", method="OPTIONS",
                 headers=[("Origin", "http://app.example"), ("Access-Control-Request-Method", "POST"),
                          ("Access-Control-Request-Headers", "x-sentry-auth, content-type, content-encoding")])
        check_preflight(r, "OPTIONS " + path)
    sentinel_then_nothing_else()


def test_cors_on_error_answers():
    fresh()
    cases = [
        (401, "/api/1/store/", [], store_body(new_event_id())),
        (403, "/api/1/store/", [("X-Sentry-Auth", "Sentry sentry_key=nobody, sentry_version=7")], b"{}"),
        (400, "/api/1/envelope/?" + q(), [], b""),
        (415, "/api/1/nel/?sentry_key=wow", [("Content-Type", "text/html")], b"[]"),
        (413, "/api/1/store/", [("X-Sentry-Auth", AUTH_VOD), ("Content-Encoding", "gzip")],
         zeros_bomb("gzip", 4 << 20)),
    ]
    for status, target, hdrs, body in cases:
        expect_json_error(post(target, body, hdrs), status, "%d on %s" % (status, target))
    r = post("/api/1/store/", b"{}", [("X-Sentry-Auth", AUTH_VOD)], method="PUT")
    check(r.status == 405, "PUT store answered %r" % r)
    check_cors(r, "405")


# ------------------------------------------------------------ Content-Encoding

def test_content_encodings_store_forwarded_as_sent():
    for codec in CODECS:
        fresh()
        eid = new_event_id()
        body = encode(codec, store_body(eid, "codec %s" % codec))
        r = post("/api/1/store/", body, [("Content-Type", "application/json"), ("Content-Encoding", codec),
                                         ("X-Sentry-Auth", AUTH_VOD)])
        expect_id_answer(r, eid, "store %s" % codec)
        rec = one_record("store %s" % codec)
        expect_forwarded(rec, "POST", "/api/20/store/", body, carrier="header")
        check(rec_header(rec, "Content-Encoding") == [codec],
              "%s: Content-Encoding upstream %r" % (codec, rec_header(rec, "Content-Encoding")))
        check(json.loads(decode(codec, rec_body(rec)))["event_id"] == eid, "%s body does not decode" % codec)


def test_content_encodings_envelope_dsn_rewritten():
    for codec in CODECS:
        for target, hdrs in (("/api/1/envelope/?" + q(), []), ("/tunnel", [])):
            fresh()
            eid = new_event_id()
            payload = json.dumps({"message": "%s via %s" % (codec, target), "x": "\u2603" * 50}).encode()
            plain = envelope(eid, dsn="http://wow@relay.example:9000/1", payload=payload)
            body = encode(codec, plain)
            r = post(target, body, hdrs + [("Content-Encoding", codec)])
            check(r.status == 200, "%s %s answered %r" % (codec, target, r))
            rec = one_record("%s envelope" % codec)
            check(rec["path"] == "/api/1/envelope/", "%s: path %r" % (codec, rec["path"]))
            check(rec_header(rec, "Content-Encoding") == [codec],
                  "%s: Content-Encoding upstream %r" % (codec, rec_header(rec, "Content-Encoding")))
            got = decode(codec, rec_body(rec))
            g_hdr, g_rest = split_envelope(got)
            check(g_rest == split_envelope(plain)[1], "%s %s: items changed" % (codec, target))
            g = json.loads(g_hdr)
            want = "http://%s@127.0.0.1:%d/1" % (KEY_WEB, S["mock"].port)
            check(g.get("dsn") == want, "%s %s: dsn %r, want %r" % (codec, target, g.get("dsn"), want))
            check(g.get("event_id") == eid, "%s: event_id changed" % codec)


# ------------------------------------------------------------ bombs and limits

def test_decompression_bombs_413_bounded_memory():
    fresh()
    sq = S["sq"]
    cases = [(codec, "/api/1/store/", 50 << 20) for codec in CODECS]
    cases.append(("gzip", "/api/1/envelope/", 1 << 30))   # over the 200 MiB envelope limit
    cases.append(("zstd", "/tunnel", 1 << 30))
    for codec, target, size in cases:
        bomb = zeros_bomb(codec, size)
        check(len(bomb) < 20971520, "bomb %s is %d bytes on the wire" % (codec, len(bomb)))
        hdrs = [("Content-Encoding", codec)]
        if target != "/tunnel":
            hdrs.append(("X-Sentry-Auth", AUTH_VOD))
        expect_json_error(post(target, bomb, hdrs), 413, "%s bomb (%d MiB) on %s" % (codec, size >> 20, target))
        st, _ = sq.status()
        check(st == 200 and sq.alive(), "sentryq unhealthy after the %s bomb: /status %s" % (codec, st))
    hwm = vm_hwm_kib(sq.proc.pid)
    # MiB; ASan shadow memory adds ~30, valgrind's own heap and translations (SENTRYQ_WRAPPER) about as much
    limit = (160 if is_sanitized(sq.bin) or WRAPPER else 100) * 1024
    check(hwm < limit, "sentryq peak RSS %d KiB after the bombs, want < %d KiB" % (hwm, limit))
    print("# peak RSS after bombs: %d KiB" % hwm)
    sentinel_then_nothing_else()


def test_limits_from_config():
    mock = S["mock"]
    port = free_port()
    ups = standard_upstreams(mock.url)
    cfg = make_config(port, S["redis"].port, ups, prefix="sqsmall:",
                      extra="limits = { max_event_size = 1000; max_envelope_size = 5000; };")
    sq = S["sq_small"] = Sentryq().start(cfg, port)

    def store(size, codec=None):
        doc = {"event_id": new_event_id(), "message": ""}
        doc["message"] = "m" * (size - len(json.dumps(doc)))
        body = json.dumps(doc).encode()
        assert len(body) == size
        hdrs = [("X-Sentry-Auth", AUTH_VOD)]
        if codec:
            body = encode(codec, body)
            hdrs.append(("Content-Encoding", codec))
        return post("/api/1/store/", body, hdrs, port=port)

    mock.reset()
    expect_json_error(store(2000), 413, "2000-byte store over max_event_size 1000")
    expect_json_error(store(2000, "gzip"), 413, "gzip store decoding to 2000 bytes")
    check(store(1000).status == 200, "1000-byte store refused")
    expect_json_error(post("/api/1/security/?sentry_key=wow", b" " * 1500 + CSP,
                           [("Content-Type", "application/csp-report")], port=port), 413, "security over 1000")
    big = envelope(new_event_id(), payload=json.dumps({"message": "e" * 4000}).encode())
    check(2000 < len(big) <= 5000, "envelope size %d" % len(big))
    r = post("/api/1/envelope/?" + q(), big, port=port)
    check(r.status == 200, "%d-byte envelope under max_envelope_size refused: %r" % (len(big), r))
    over = envelope(new_event_id(), payload=json.dumps({"message": "e" * 6000}).encode())
    expect_json_error(post("/api/1/envelope/?" + q(), over, port=port), 413, "envelope over max_envelope_size")
    recs = mock.wait_count(2)
    check(len(recs) == 2 and sorted(len(rec_body(rc)) for rc in recs) == [1000, len(big)],
          "upstream got %r" % [len(rec_body(rc)) for rc in recs])
    sq.stop()


if __name__ == "__main__":
    main(globals())
