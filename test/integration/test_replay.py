#!/usr/bin/python3
"""test_replay.py - replay every captured SDK POST through sentryq and check what the upstream got.

Config: upstream "wow" (no path prefix) holds vod_be (rule 1: key wow + secret vod_be) and "web"
(real id 1, rule 2: key wow, no secret, path id 1); upstream "other" (path prefix /sentry, same
mock) holds the project whose real key is the key-only DSN key (rule 3), real id 77.
"""

import base64
import concurrent.futures
import gzip
import hashlib
import json
import os
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import (  # noqa: E402
    HEX32, decode_body, fx_header, load_fixtures, new_event_id, ordered_json, replay, replay_on,
    split_envelope)
from sqtest.http import KeepAlive, parse_sentry_auth, query_pairs  # noqa: E402
from sqtest.mock import Mock, rec_body, rec_header  # noqa: E402
from sqtest.proc import check, free_port, wait_for  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq, make_config, project_conf, status_counters, upstream_conf  # noqa: E402

KEY_VOD, SEC_VOD, ID_VOD = "a6f431e198734105aef464f6e702351f", "563b78f7bc1941828df0e5ebd79cc17a", 20
KEY_WEB, SEC_WEB, ID_WEB = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf", "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", 1
KEY_ONLY, SEC_ONLY, ID_ONLY = "0123456789abcdef0123456789abcdef", "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf", 77
PREFIX_OTHER = "/sentry"
KEPT_HEADERS = ["Content-Type", "Content-Encoding", "User-Agent", "Origin", "Referer", "sentry-trace"]

S = {}  # shared processes for this file


def setup_module():
    S["redis"] = Redis().start()
    S["mock"] = Mock().start()
    m = S["mock"]
    S["port"] = free_port()
    ups = [
        upstream_conf("wow", m.url, [project_conf("vod_be", KEY_VOD, ID_VOD, SEC_VOD),
                                     project_conf("web", KEY_WEB, ID_WEB, SEC_WEB)]),
        upstream_conf("other", m.url + PREFIX_OTHER,
                      [project_conf("keyonly", KEY_ONLY, ID_ONLY, SEC_ONLY)]),
    ]
    S["sq"] = Sentryq().start(make_config(S["port"], S["redis"].port, ups), S["port"])


def teardown_module():
    if "sq" in S:
        S["sq"].stop()


# ------------------------------------------------------------ what the spec says must arrive

def sdk_credentials(fx):
    """(carrier, key, secret or None, stated project id) as the SDK sent them."""
    path_id = None
    parts = fx["path"].strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "api":
        path_id = int(parts[1])
    auth = fx_header(fx, "X-Sentry-Auth")
    if auth:
        d = dict(parse_sentry_auth(auth))
        return "header", d["sentry_key"], d.get("sentry_secret") or None, path_id
    if "sentry_key=" in fx["query"]:
        d = dict(query_pairs(fx["query"]))
        return "query", d["sentry_key"], d.get("sentry_secret") or None, path_id
    hdr = json.loads(split_envelope(decode_body(fx["body"], fx_header(fx, "Content-Encoding")))[0])
    dsn = hdr["dsn"]
    key = dsn.split("//", 1)[1].split("@", 1)[0]
    key, _, secret = key.partition(":")
    return "envelope", key, secret or None, int(dsn.rstrip("/").rsplit("/", 1)[1])


def expected_route(key, secret, path_id):
    """(prefix, real key, real secret, real id) by rules 1-3 of this file's config."""
    if key == "wow" and secret == "vod_be":
        return "", KEY_VOD, SEC_VOD, ID_VOD
    if key == "wow" and not secret and path_id == ID_WEB:
        return "", KEY_WEB, SEC_WEB, ID_WEB
    if key == KEY_ONLY:
        return PREFIX_OTHER, KEY_ONLY, SEC_ONLY, ID_ONLY
    raise AssertionError("fixture credentials %r match no rule of the test config" % key)


def endpoint_of(fx):
    return "envelope" if fx["path"] == "/tunnel" else fx["path"].rstrip("/").rsplit("/", 1)[1]


def expected_header_line(hdr_line, sdk_key, real_key, dsn):
    """Envelope header after the spec's rewrite, as ordered pairs (or None if no rewrite)."""
    doc = ordered_json(hdr_line)
    out, changed = [], False
    for k, v in doc:
        if k == "dsn":
            v, changed = dsn, True
        elif k == "trace" and isinstance(v, list):
            nv = [(tk, real_key if tk == "public_key" and tv == sdk_key else tv) for tk, tv in v]
            changed = changed or nv != v
            v = nv
        out.append((k, v))
    return out, changed


def pairs_to_obj(v):
    if isinstance(v, list) and all(isinstance(p, tuple) for p in v):
        return {k: pairs_to_obj(x) for k, x in v}
    return v


def match_key(fx_path, body):
    """Content key that survives the allowed rewrites: header line fields + hash of the rest."""
    if fx_path.endswith("/store/"):
        return ("store", hashlib.sha256(body).hexdigest())
    hdr, rest = split_envelope(body)
    try:
        h = json.loads(hdr)
    except ValueError:
        h = {}
    return ("envelope", hashlib.sha256(rest).hexdigest(), h.get("sent_at"), h.get("event_id"))


def fixture_key(fx):
    return match_key(fx["path"], decode_body(fx["body"], fx_header(fx, "Content-Encoding")))


def record_key(rec):
    body = rec_body(rec)
    ce = (rec_header(rec, "Content-Encoding") or [""])[0]
    try:
        body = decode_body(body, ce)
    except Exception:
        return ("undecodable", rec["seq"])
    ep = "/store/" if rec["path"].endswith("/store/") else "/envelope/"
    return match_key(ep, body)


def is_uuid4_hex(s):
    return bool(HEX32.match(s)) and s[12] == "4" and s[16] in "89ab"


def store_json(body, content_encoding):
    """The JSON text of a store body: plain, Content-Encoded, or raven's (base64 of zlib-compressed
    JSON, application/octet-stream, with no Content-Encoding or with deflate)."""
    try:
        body = decode_body(body, content_encoding)
    except (zlib.error, ValueError):
        pass  # raven's base64 text labelled deflate: decoded below
    if body[:1] != b"{":
        body = zlib.decompress(base64.b64decode(body, validate=True))
    return body


def own_event_id(fx):
    """The event id the fixture's body carries, or None. Binding whatever the encoding: ingest
    reads the id from the decoded body (gzip, deflate, br, zstd) and from a raven body."""
    ce = fx_header(fx, "Content-Encoding")
    eid = None
    try:
        if fx["path"].endswith("/store/"):
            eid = json.loads(store_json(fx["body"], ce)).get("event_id")
        else:
            eid = json.loads(split_envelope(decode_body(fx["body"], ce))[0]).get("event_id")
    except (ValueError, zlib.error):
        pass
    if eid:
        eid = eid.replace("-", "").lower()
    return eid


# ------------------------------------------------------------ per-fixture comparison

def check_forwarded(fx, rec, mock_port, problems, notes):
    name = fx["name"]

    def bad(msg):
        problems.append("%s: %s" % (name, msg))

    carrier, key, secret, path_id = sdk_credentials(fx)
    prefix, rkey, rsecret, rid = expected_route(key, secret, path_id)
    want_path = "%s/api/%d/%s/" % (prefix, rid, endpoint_of(fx))
    if rec["method"] != "POST":
        bad("method %s" % rec["method"])
    if rec["path"] != want_path:
        bad("path %r, want %r" % (rec["path"], want_path))
    xsa = rec_header(rec, "X-Sentry-Auth")
    authz = rec_header(rec, "Authorization")
    if authz:
        bad("unexpected Authorization header upstream %r" % authz)
    want_secret = rsecret if secret else None

    if carrier == "header":
        if "sentry_" in rec["query"]:
            bad("second carrier: query %r upstream besides X-Sentry-Auth" % rec["query"])
        if len(xsa) != 1:
            bad("want exactly one X-Sentry-Auth upstream, got %r" % xsa)
        else:
            want = []
            for k, v in parse_sentry_auth(fx_header(fx, "X-Sentry-Auth")):
                if k == "sentry_key":
                    v = rkey
                elif k == "sentry_secret":
                    if want_secret is None:
                        continue
                    v = want_secret
                want.append((k, v))
            got = parse_sentry_auth(xsa[0])
            if got != want:
                bad("X-Sentry-Auth %r, want fields %r" % (xsa[0], want))
    elif carrier == "query":
        if xsa:
            bad("second carrier: X-Sentry-Auth %r upstream besides the query" % xsa)
        want = []
        for p in fx["query"].split("&"):
            k = p.partition("=")[0]
            if k == "sentry_key":
                p = "sentry_key=" + rkey
            elif k == "sentry_secret":
                if want_secret is None:
                    continue
                p = "sentry_secret=" + want_secret
            want.append(p)
        if rec["query"] != "&".join(want):
            bad("query %r, want %r" % (rec["query"], "&".join(want)))
    else:  # tunnel: the envelope header is the only credential
        if rec["query"]:
            bad("tunnel forwarded with a query %r" % rec["query"])
        if xsa:
            bad("tunnel forwarded with X-Sentry-Auth %r" % xsa)

    check_body(fx, rec, key, rkey, prefix, rid, mock_port, bad, notes)

    for h in KEPT_HEADERS:
        sent = fx_header(fx, h)
        got = rec_header(rec, h)
        if sent is not None and got != [sent]:
            bad("header %s %r, want [%r]" % (h, got, sent))
    hosts = rec_header(rec, "Host")
    if hosts not in (["127.0.0.1:%d" % mock_port], ["127.0.0.1"]):
        bad("Host %r does not name the upstream" % hosts)
    xff = rec_header(rec, "X-Forwarded-For")
    sent_xff = fx_header(fx, "X-Forwarded-For")
    want_xff = (sent_xff + ", 127.0.0.1") if sent_xff else "127.0.0.1"
    if xff != [want_xff]:
        bad("X-Forwarded-For %r, want [%r]" % (xff, want_xff))
    for h in ("Keep-Alive", "Transfer-Encoding"):
        if rec_header(rec, h):
            bad("hop-by-hop header %s copied: %r" % (h, rec_header(rec, h)))
    cl = rec_header(rec, "Content-Length")
    if cl != [str(len(rec_body(rec)))]:
        bad("Content-Length %r for a %d-byte body" % (cl, len(rec_body(rec))))


def check_body(fx, rec, sdk_key, rkey, prefix, rid, mock_port, bad, notes):
    body = rec_body(rec)
    ce_sent = fx_header(fx, "Content-Encoding")
    if body == fx["body"]:
        got_dec = None  # byte-identical: acceptable unless a dsn rewrite was due
    else:
        try:
            got_dec = decode_body(body, ce_sent)
        except Exception as e:
            return bad("forwarded body does not decode with Content-Encoding %r: %s" % (ce_sent, e))
    sent_dec = decode_body(fx["body"], ce_sent)
    if fx["path"].endswith("/store/"):
        if got_dec is not None:
            bad("store body changed (%d bytes sent, %d forwarded)" % (len(fx["body"]), len(body)))
        return
    s_hdr, s_rest = split_envelope(sent_dec)
    dsn = "http://%s@127.0.0.1:%d%s/%d" % (rkey, mock_port, prefix, rid)
    want_hdr, must_change = expected_header_line(s_hdr, sdk_key, rkey, dsn)
    has_dsn = any(k == "dsn" for k, _ in ordered_json(s_hdr))
    if got_dec is None:
        if has_dsn:
            bad("envelope dsn not rewritten (body forwarded byte-identical)")
        elif must_change:
            notes.append("%s: trace.public_key %r forwarded unmapped" % (fx["name"], sdk_key))
        return
    g_hdr, g_rest = split_envelope(got_dec)
    if g_rest != s_rest or (b"\n" in sent_dec) != (b"\n" in got_dec):
        bad("envelope bytes after the header line changed")
    try:
        got_pairs = ordered_json(g_hdr)
    except ValueError:
        return bad("forwarded envelope header is not JSON: %r" % g_hdr[:200])
    if got_pairs != want_hdr:
        bad("envelope header %s, want %s" % (g_hdr.decode(errors="replace"),
                                              json.dumps(pairs_to_obj(want_hdr))))
    if not has_dsn and must_change:
        notes.append("%s: trace.public_key mapped to the real key" % fx["name"])


# ------------------------------------------------------------ tests

def post_fixtures():
    return [fx for fx in load_fixtures() if fx["method"] == "POST"]


def test_fixture_keys_unique():
    """Self-check: content keys must tell every fixture apart, or matching would be ambiguous."""
    fxs = post_fixtures()
    keys = [fixture_key(fx) for fx in fxs]
    dup = [fx["name"] for fx, k in zip(fxs, keys) if keys.count(k) > 1]
    check(not dup, "fixtures share a content key: %s" % dup)
    check(len(fxs) >= 60, "expected the full corpus, got %d POST fixtures" % len(fxs))


def test_replay_all_fixtures():
    sq, mock = S["sq"], S["mock"]
    mock.reset()
    fxs = post_fixtures()
    c0 = status_counters(sq)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        answers = list(ex.map(lambda fx: replay(fx, S["port"]), fxs))
    problems, notes = [], []
    for fx, r in zip(fxs, answers):
        if r.status != 200:
            problems.append("%s: sentryq answered %d %r" % (fx["name"], r.status, r.body[:200]))
            continue
        if not (r.header("Content-Type") or "").startswith("application/json"):
            problems.append("%s: answer Content-Type %r" % (fx["name"], r.header("Content-Type")))
        try:
            rid = r.json().get("id", "")
        except ValueError:
            problems.append("%s: answer is not JSON: %r" % (fx["name"], r.body[:200]))
            continue
        eid = own_event_id(fx)
        if not HEX32.match(rid or ""):
            problems.append("%s: answer id %r is not 32 lowercase hex" % (fx["name"], rid))
        elif eid and rid != eid:
            problems.append("%s: answered id %s, the event's own id is %s" % (fx["name"], rid, eid))
        elif not eid and not is_uuid4_hex(rid):
            problems.append("%s: no event id in body; answer %s is not a fresh uuid4" % (fx["name"], rid))
    accepted = sum(1 for r in answers if r.status == 200)
    recs = mock.wait_count(accepted, timeout=30)
    by_key = {}
    for rec in recs:
        by_key.setdefault(record_key(rec), []).append(rec)
    matched = set()
    for fx, r in zip(fxs, answers):
        k = fixture_key(fx)
        got = by_key.get(k, [])
        matched.add(k)
        if r.status != 200:
            continue
        if not got:
            problems.append("%s: never reached the upstream (or arrived altered beyond the header line)"
                            % fx["name"])
            continue
        if len(got) > 1:
            problems.append("%s: forwarded %d times" % (fx["name"], len(got)))
        check_forwarded(fx, got[0], mock.port, problems, notes)
    for k, rs in by_key.items():
        if k not in matched:
            problems.append("upstream got a request matching no fixture: %s %s?%s" % (
                rs[0]["method"], rs[0]["path"], rs[0]["query"]))
    kinds = {}
    for n in sorted(set(notes)):
        name, _, what = n.partition(": ")
        kinds.setdefault(what, []).append(name)
    for what, names in sorted(kinds.items()):
        print("# note: %s: %d fixture(s), e.g. %s" % (what, len(names), ", ".join(names[:3])))
    c1 = status_counters(sq)
    for name, want in (("received", len(fxs)), ("enqueued", accepted)):
        got = c1.get(name, 0) - c0.get(name, 0)
        if got != want:
            problems.append("counter %s moved by %s, want %d" % (name, got, want))
    wait_for(lambda: status_counters(sq).get("forwarded", 0) - c0.get("forwarded", 0) >= accepted,
             15, "counters.forwarded to reach %d" % accepted)
    wait_for(lambda: sq.status()[1]["queue"]["pending"] == 0, 15, "queue.pending 0")
    check(not problems, "%d problem(s):\n  " % len(problems) + "\n  ".join(problems))


def tunnel_rewrite_case(dsn_key, dsn_id, use_gzip, prefix, rkey, rid):
    """Send browser-tunnel-2 with the given dsn; check dsn/public_key rewritten, rest identical."""
    mock = S["mock"]
    mock.reset()
    fx = next(f for f in post_fixtures() if f["name"] == "browser-tunnel-2")
    hdr, rest = split_envelope(fx["body"])
    doc = json.loads(hdr)
    doc["dsn"] = "http://%s@127.0.0.1:29517/%d" % (dsn_key, dsn_id)
    doc["trace"]["public_key"] = dsn_key
    doc["event_id"] = new_event_id()
    plain = json.dumps(doc, separators=(",", ":")).encode() + b"\n" + rest
    over = {"body": gzip.compress(plain) if use_gzip else plain}
    if use_gzip:
        over["headers"] = {"Content-Encoding": "gzip"}
    r = replay(fx, S["port"], over)
    check(r.status == 200, "tunnel answered %r" % r)
    check(r.json().get("id") == doc["event_id"],
          "answer id %r, want the envelope's event_id %s" % (r.body, doc["event_id"]))
    rec = mock.wait_count(1)[0]
    check(rec["path"] == "%s/api/%d/envelope/" % (prefix, rid), "path %r" % rec["path"])
    check(not rec_header(rec, "X-Sentry-Auth") and not rec["query"], "tunnel got a carrier")
    got = rec_body(rec)
    if use_gzip:
        check(rec_header(rec, "Content-Encoding") == ["gzip"],
              "Content-Encoding %r" % rec_header(rec, "Content-Encoding"))
        got = gzip.decompress(got)
    g_hdr, g_rest = split_envelope(got)
    check(g_rest == rest, "envelope items changed")
    g = json.loads(g_hdr)
    want_dsn = "http://%s@127.0.0.1:%d%s/%d" % (rkey, mock.port, prefix, rid)
    check(g.get("dsn") == want_dsn, "dsn %r, want %r" % (g.get("dsn"), want_dsn))
    check(g["trace"]["public_key"] == rkey, "trace.public_key %r, want %r" % (g["trace"]["public_key"], rkey))
    check(list(g) == list(doc), "header key order changed: %r" % list(g))
    for k in doc:
        if k not in ("dsn", "trace"):
            check(g[k] == doc[k], "header field %s changed: %r" % (k, g[k]))


def test_tunnel_gzip_dsn_rewritten():
    """gzip tunnel, rule 2: dsn and trace.public_key rewritten on the decoded body, re-gzipped."""
    tunnel_rewrite_case("wow", 1, True, "", KEY_WEB, ID_WEB)


def test_tunnel_real_key_with_prefix():
    """Tunnel with a real-key dsn (rule 3) to an upstream with a path prefix and another id."""
    tunnel_rewrite_case(KEY_ONLY, 42, False, PREFIX_OTHER, KEY_ONLY, ID_ONLY)


def test_fixture_with_client_xff():
    """An SDK-sent X-Forwarded-For is kept and the peer appended."""
    mock = S["mock"]
    mock.reset()
    fx = next(f for f in post_fixtures() if f["name"] == "node-exception-2")
    r = replay(fx, S["port"], {"headers": {"X-Forwarded-For": "203.0.113.7"}})
    check(r.status == 200, "answered %r" % r)
    rec = mock.wait_count(1)[0]
    check(rec_header(rec, "X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"],
          "X-Forwarded-For %r" % rec_header(rec, "X-Forwarded-For"))


def test_replay_keepalive_connection():
    """node and raven reuse sockets: every fixture of theirs on one connection, in order."""
    mock = S["mock"]
    mock.reset()
    fxs = [fx for fx in post_fixtures() if fx["sdk"] in ("node", "raven")]
    ka = KeepAlive(S["port"])
    try:
        for fx in fxs:
            r = replay_on(ka, fx)
            check(r.status == 200, "%s on a reused connection answered %r" % (fx["name"], r))
    finally:
        ka.close()
    recs = mock.wait_count(len(fxs), timeout=30)
    got = sorted(record_key(r) for r in recs)
    check(got == sorted(fixture_key(fx) for fx in fxs), "upstream got a different set of requests")


if __name__ == "__main__":
    main(globals())
