#!/usr/bin/python3
"""test_legacy_drain.py - `sentryq legacy drain`: a real redis-server filled the way the old openresty
Lua script filled it (cjson records RPUSHed to sentry_header_uri, each body SET at
sentry:body:<timestamp>, several records per second so later bodies overwrite earlier ones, some
bodies missing, some unknown projects, some records malformed), a sentryq config made with
`sentryq import-legacy-config` from an old-style config dict; then --dry-run (nothing moves, counts
right), the drain (counts, the old list keeps exactly the kept records, the streams hold exactly the
moved ones with byte-identical bodies and the fields ingest writes), sentryq started on the result
delivers every moved event with the real credentials and project id; a drained record is the entry
the same SDK request gets from ingest; SIGKILL in the middle of a 20 000-record drain loses nothing;
the usage and failure exits."""

import base64
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.http import parse_sentry_auth, query_pairs, request  # noqa: E402
from sqtest.mock import Mock, rec_body, rec_header  # noqa: E402
from sqtest.proc import check, free_port, spawn, tmpdir, wait_for  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import BIN, Sentryq, make_config, project_conf, run_cli, upstream_conf  # noqa: E402

KEY_VOD, SEC_VOD = "a6f431e198734105aef464f6e702351f", "563b78f7bc1941828df0e5ebd79cc17a"
KEY_WEB, SEC_WEB = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf", "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
KEY_LS, SEC_LS = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
SECRETS = (KEY_VOD, SEC_VOD, KEY_WEB, SEC_WEB, KEY_LS, SEC_LS, "vod_be", "lscms")
IDS = {("wow", "vod_be"): 20, ("wow", "web"): 21, ("ktv", "lscms"): 11}
REAL = {("wow", "vod_be"): (KEY_VOD, SEC_VOD), ("wow", "web"): (KEY_WEB, SEC_WEB), ("ktv", "lscms"): (KEY_LS, SEC_LS)}

LIST, BODY = "sentry_header_uri", "sentry:body:"
PREFIX = "sq-drain:"
KEPT_NAMES = {"content-type": "Content-Type", "content-encoding": "Content-Encoding", "user-agent": "User-Agent",
              "origin": "Origin", "referer": "Referer", "accept-language": "Accept-Language"}
CARRIER = {"x-sentry-auth": 1, "query": 4, "envelope": 6}

OLD_PY = '''\
# the old forwarder: DSN key -> Sentry server, DSN secret -> project
import requests

config = {
    "wow": {"url": "%(url)s",
            "vod_be": {"key": "%(key_vod)s", "secret": "%(sec_vod)s", "num": "20"},
            "web": {"key": "%(key_web)s", "secret": "%(sec_web)s", "num": 21}},
    "ktv": {"url": "%(url)s/ktv",
            "lscms": {"key": "%(key_ls)s", "secret": "%(sec_ls)s", "num": "11"}},
}
'''

# What the old access_by_lua handler did for each SDK request, run in Redis's own Lua with its
# cjson (the library openresty used): one header record RPUSHed, its body SET at a key of
# one-second resolution. ARGV: timestamp, uri, header JSON, body, "1" to SET the body.
LUA_PUSH = """
local ts = tonumber(ARGV[1])
local rec = cjson.encode({uri = ARGV[2], timestamp = ts, header = cjson.decode(ARGV[3])})
redis.call('RPUSH', KEYS[1], rec)
if ARGV[5] == '1' then redis.call('SET', KEYS[2] .. ts, ARGV[4]) end
return rec
"""
# The same for many requests in one call: ARGV is groups of timestamp, uri, header JSON, body.
LUA_PUSH_MANY = """
for i = 1, #ARGV, 4 do
  local ts = tonumber(ARGV[i])
  redis.call('RPUSH', KEYS[1], cjson.encode({uri = ARGV[i + 1], timestamp = ts, header = cjson.decode(ARGV[i + 2])}))
  redis.call('SET', KEYS[2] .. ts, ARGV[i + 3])
end
return #ARGV / 4
"""

S = {}


def setup_module():
    S["dir"] = tmpdir("sentryq-drain-")
    S["old"] = Redis(persist=False).start()
    S["sq_redis"] = Redis().start()
    S["mock"] = Mock().start()
    path = os.path.join(S["dir"], "OLD.py")
    with open(path, "w") as f:
        f.write(OLD_PY % {"url": S["mock"].url, "key_vod": KEY_VOD, "sec_vod": SEC_VOD, "key_web": KEY_WEB,
                          "sec_web": SEC_WEB, "key_ls": KEY_LS, "sec_ls": SEC_LS})
    p = run_cli(["import-legacy-config", path])
    check(p.returncode == 0, "import-legacy-config exited %r: %r" % (p.returncode, p.stderr))
    S["port"] = free_port()
    S["imported"] = p.stdout
    S["conf_text"] = relay_conf(S["port"], S["sq_redis"].port, PREFIX) + p.stdout
    S["conf"] = write("sentryq.conf", S["conf_text"])


def teardown_module():
    for k in ("old", "sq_redis"):
        if k in S:
            S[k].kill()


def relay_conf(port, redis_port, prefix, extra=""):
    return ('listen = { address = "127.0.0.1"; port = %d; };\n'
            'redis = { host = "127.0.0.1"; port = %d; prefix = "%s"; };\n'
            'forward = { retry_initial = 0.2; retry_max = 1.0; };\n%s' % (port, redis_port, prefix, extra))


def write(name, text):
    path = os.path.join(S["dir"], name)
    with open(path, "w") as f:
        f.write(text)
    return path


def drain(*args, conf=None, old=None, timeout=120, env=None):
    p = run_cli(["-c", conf or S["conf"], "legacy", "drain", "--from", "127.0.0.1:%d" % (old or S["old"]).port]
                + list(args), timeout=timeout, env=env)
    for sec in SECRETS:
        check(sec not in p.stdout + p.stderr, "the drain printed a credential or project name (%s...)" % sec[:3])
    return p


COUNTS = re.compile(r"^(dry run: would move|moved) (\d+), unroutable (\d+) \(kept\), missing body (\d+) \(kept\), "
                    r"malformed (\d+) \(kept\)(; nothing was moved)?$", re.M)


def counts(p):
    m = COUNTS.search(p.stdout)
    check(m, "no counts line in %r (stderr %r)" % (p.stdout[-2000:], p.stderr[-2000:]))
    return {"moved": int(m.group(2)), "unroutable": int(m.group(3)), "missing": int(m.group(4)),
            "malformed": int(m.group(5)), "dry": m.group(1).startswith("dry")}


# ------------------------------------------------------------ the old pipeline's Redis

def lua_push(r, ts, uri, headers, body, with_body=True):
    """One SDK request as the old script queued it; returns the exact list element."""
    return r.command("EVAL", LUA_PUSH, "2", LIST, BODY, str(ts), uri, json.dumps(headers),
                     body if body is not None else b"", "1" if with_body else "0")


def store_event(eid, extra=""):
    return json.dumps({"event_id": eid, "message": "legacy %s%s" % (eid[:6], extra), "platform": "python",
                       "level": "error"}).encode()


def xsa(key, secret=None):
    return ("Sentry sentry_version=7, sentry_client=raven-python/6.10.0, sentry_timestamp=1700000000.5, "
            "sentry_key=%s" % key + (", sentry_secret=%s" % secret if secret else ""))


def old_headers(extra, body):
    """What openresty's ngx.req.get_headers() held for an SDK request: lower-case names."""
    h = {"host": "sentry.old.example", "content-length": str(len(body)), "accept-encoding": "identity",
         "connection": "keep-alive"}
    h.update(extra)
    return h


class Rec:
    """One request the old script queued, and what the drain must make of it."""

    def __init__(self, ts, uri, headers, body, expect, route=None, with_body=True, carrier=None, event_id=None,
                 endpoint=None, query="", sdk_key="wow", secret=False, cats=None):
        self.ts, self.uri, self.headers, self.body, self.expect = ts, uri, headers, body, expect
        self.route, self.with_body, self.carrier, self.event_id = route, with_body, carrier, event_id
        self.endpoint, self.query, self.sdk_key, self.secret, self.cats = endpoint, query, sdk_key, secret, cats
        self.element = None


def scenario(t0):
    """Records in push order, each with the outcome the drain must give it."""
    recs = []

    def store(ts, route, expect="moved", with_body=True, key="wow", secret=None, extra=None, eid=None,
              body=None, ce=None, ct="application/json"):
        eid = eid or os.urandom(16).hex()
        body = body if body is not None else store_event(eid)
        h = {"x-sentry-auth": xsa(key, secret if secret is not None else route[1] if route else "vod_be"),
             "content-type": ct, "user-agent": "raven-python/6.10.0", "x-forwarded-for": "203.0.113.7"}
        if ce:
            h["content-encoding"] = ce
        h.update(extra or {})
        recs.append(Rec(ts, "/api/1/store/", old_headers(h, body), body, expect, route, with_body,
                        "x-sentry-auth", eid, "store/", "", key, True, {"default", "error"}))
        return recs[-1]

    # one of each carrier and body kind, each in a second of its own
    store(t0, ("wow", "vod_be"), extra={"accept-language": ["de-DE", "en"], "cookie": "sid=1"})
    eid = os.urandom(16).hex()
    raven = base64.b64encode(zlib.compress(store_event(eid)))
    store(t0 + 1, ("wow", "vod_be"), eid=eid, body=raven, ct="application/octet-stream")
    eid = os.urandom(16).hex()
    store(t0 + 2, ("wow", "web"), eid=eid, body=gzip.compress(store_event(eid)), ce="gzip")
    eid = os.urandom(16).hex()
    env = (json.dumps({"event_id": eid, "sent_at": "2024-01-01T00:00:00Z"}) + "\n" +
           json.dumps({"type": "transaction"}) + "\n" + json.dumps({"type": "transaction", "event_id": eid}) + "\n")
    env = env.encode()
    q = "sentry_key=wow&sentry_version=7&sentry_client=sentry.javascript.browser%2F7.120.0"
    recs.append(Rec(t0 + 3, "/api/21/envelope/?" + q, old_headers(
        {"content-type": "text/plain;charset=UTF-8", "origin": "https://app.example",
         "referer": "https://app.example/x",
         "user-agent": "Mozilla/5.0"}, env), env, "moved", ("wow", "web"), True, "query", eid, "envelope/", q, "wow",
        False, {"transaction"}))
    eid = os.urandom(16).hex()
    env = (json.dumps({"event_id": eid, "dsn": "https://%s@o1.ingest.sentry.io/11" % KEY_LS}) + "\n" +
           json.dumps({"type": "session"}) + "\n{}\n").encode()
    recs.append(Rec(t0 + 4, "/api/11/envelope/", old_headers({"content-type": "application/x-sentry-envelope"}, env),
                    env, "moved", ("ktv", "lscms"), True, "envelope", eid, "envelope/", "", KEY_LS, False,
                    {"session"}))
    dump = b"MDMP\x93\xa7\x00\x00" + os.urandom(200) + b"\x00\xff\r\n\x00"
    q = "sentry_key=wow&sentry_secret=vod_be"
    recs.append(Rec(t0 + 5, "/api/20/minidump/?" + q, old_headers({"content-type": "application/octet-stream"}, dump),
                    dump, "moved", ("wow", "vod_be"), True, "query", None, "minidump/", q, "wow", True,
                    {"error", "attachment", "attachment_item"}))
    # ngx.now(): a float timestamp, the key suffix as Lua's tostring writes it
    store(t0 + 6.25, ("wow", "vod_be"))
    # its second comes again over two hundred records later (past the look-ahead): the body at its
    # key is that later record's, longer one, which its content-length tells
    store(t0 + 7, ("wow", "vod_be"), expect="missing")

    # several records per second: each SET overwrote the body of the one before; only the last
    # record of a second still has its own body
    for s in range(110):
        for k in range(1 + s % 3):
            last = k == s % 3
            store(t0 + 10 + s, ("wow", "vod_be") if s % 2 else ("wow", "web"), expect="moved" if last else "missing")

    store(t0 + 7, ("wow", "web"), extra={"user-agent": "raven-python/6.10.0 (a longer body follows)"},
          body=store_event(os.urandom(16).hex(), " and a longer message, so the length differs"))
    recs[-1].event_id = json.loads(recs[-1].body)["event_id"]
    # bodies missing altogether; unknown projects (no default route); more malformed ones below
    for i in range(3):
        store(t0 + 200 + i, ("wow", "vod_be"), expect="missing", with_body=False)
    for i in range(3):
        store(t0 + 210 + i, None, expect="unroutable", key="nobody", secret="nothing")
    store(t0 + 213, None, expect="unroutable", key="wow", secret="no_such_project")
    # the same second again two records later, bodies of one length: the look-ahead tells
    store(t0 + 220, ("wow", "vod_be"), expect="missing")
    store(t0 + 221, ("wow", "web"))
    store(t0 + 220, ("wow", "vod_be"))
    # requests ingest refuses count as malformed: no credentials (401), not an endpoint (404)
    store(t0 + 230, None, expect="malformed", extra={"x-sentry-auth": "none"})
    del recs[-1].headers["x-sentry-auth"]
    r = store(t0 + 231, ("wow", "vod_be"), expect="malformed")
    r.uri = "/favicon.ico"
    return recs


def fill(r, recs):
    for rec in recs:
        rec.element = lua_push(r, rec.ts, rec.uri, rec.headers, rec.body, rec.with_body)
    # not JSON, and JSON without a uri: pushed by something else than the script
    r.command("RPUSH", LIST, b"\x00not json {")
    r.command("RPUSH", LIST, json.dumps({"timestamp": 5, "header": {}}))
    recs.append(Rec(0, None, None, None, "malformed"))
    recs[-1].element = b"\x00not json {"
    recs.append(Rec(0, None, None, None, "malformed"))
    recs[-1].element = json.dumps({"timestamp": 5, "header": {}}).encode()


def want_counts(recs):
    out = {"moved": 0, "unroutable": 0, "missing": 0, "malformed": 0}
    for rec in recs:
        out[rec.expect] += 1
    return out


def old_list(r):
    return r.command("LRANGE", LIST, "0", "-1")


def streams(r, prefix):
    keys = sorted(k.decode() for k in r.command("KEYS", prefix + "q:*"))
    return {k: [(eid.decode(), {kv[i].decode(): kv[i + 1] for i in range(0, len(kv), 2)})
                for eid, kv in r.command("XRANGE", k, "-", "+")] for k in keys}


def sq_keys(r, prefix):
    return sorted(k.decode() for k in r.command("KEYS", prefix + "*"))


def body_key(rec):
    ts = rec.ts
    return BODY + (str(ts) if isinstance(ts, int) else repr(ts))


# ------------------------------------------------------------ the drain, step by step

def test_dry_run_then_drain_then_delivery():
    old, sq = S["old"], S["sq_redis"]
    t0 = int(time.time()) - 7200
    recs = scenario(t0)
    fill(old, recs)
    want = want_counts(recs)
    check(want["moved"] >= 30 and want["missing"] >= 30, "scenario too small: %r" % want)
    before = old_list(old)
    check(before == [rec.element for rec in recs], "the old list is not what the script pushed")
    bodies_before = {body_key(rec): old.command("GET", body_key(rec)) for rec in recs if rec.uri}

    # --dry-run: the counts, nothing moved, nothing written anywhere
    p = drain("--dry-run")
    check(p.returncode == 1, "dry run with kept records exited %r: %r" % (p.returncode, p.stderr))
    got = counts(p)
    check(got["dry"] and {k: got[k] for k in want} == want, "dry run counts %r, want %r\n%s" % (got, want, p.stdout))
    check(old_list(old) == before, "the dry run changed the old list")
    check({k: old.command("GET", k) for k in bodies_before} == bodies_before, "the dry run changed a body key")
    check(sq_keys(sq, PREFIX) == [], "the dry run wrote to sentryq's Redis: %r" % sq_keys(sq, PREFIX))
    check("would move 1 to ktv/11" in p.stdout, "no per-route line in %r" % p.stdout)

    # the drain
    p = drain()
    check(p.returncode == 1, "drain with kept records exited %r: %r" % (p.returncode, p.stderr))
    got = counts(p)
    check(not got["dry"] and {k: got[k] for k in want} == want, "drain counts %r, want %r\n%s" % (got, want, p.stdout))
    for line in ("unroutable: no routing rule takes its credentials",
                 "missing body (unpairable): overwritten by a later record",
                 "missing body (unpairable): the body key is absent", "its content-length", "malformed: not JSON",
                 "malformed: no uri", "ingest would answer 401", "ingest would answer 404"):
        check(line in p.stdout, "no %r in the report:\n%s" % (line, p.stdout))
    kept = [rec for rec in recs if rec.expect != "moved"]
    moved = [rec for rec in recs if rec.expect == "moved"]
    check(old_list(old) == [rec.element for rec in kept], "the old list does not hold exactly the kept records")
    for rec in moved:
        check(old.command("EXISTS", body_key(rec)) == 0, "a moved record's body key is left: %s" % body_key(rec))
    for rec in kept:
        if rec.expect == "unroutable":
            check(old.command("GET", body_key(rec)) == rec.body, "an unroutable record lost its body")
    check_streams(sq, moved)
    S["moved"] = moved

    # again: nothing more to move, the same kept
    p = drain()
    got = counts(p)
    check(p.returncode == 1 and got["moved"] == 0 and got["missing"] == want["missing"], "second drain %r" % got)
    check(old_list(old) == [rec.element for rec in kept], "the second drain changed the old list")

    # sentryq on the result: every moved event at its real project, with its real credentials
    sq_proc = Sentryq().start(S["conf_text"], S["port"])
    try:
        check_delivered(moved)
        wait_for(lambda: all(len(v) == 0 for v in streams(sq, PREFIX).values()), 20, "the streams to empty")
    finally:
        sq_proc.stop()


def check_streams(sq, moved):
    got = streams(sq, PREFIX)
    by_route = {}
    for rec in moved:
        by_route.setdefault("%sq:%s:%s" % (PREFIX, rec.route[0], rec.route[1]), []).append(rec)
    check(sorted(got) == sorted(by_route), "streams %r, want %r" % (sorted(got), sorted(by_route)))
    now = time.time() * 1000
    total = 0
    for stream, recs in by_route.items():
        entries = got[stream]
        check([f["b"] for _, f in entries] == [rec.body for rec in recs],
              "%s: the bodies differ from the moved records' (order or bytes)" % stream)
        for (_, f), rec in zip(entries, recs):
            what = "%s entry of the record at %s" % (stream, rec.ts)
            check(f["v"] == b"1" and f["m"] == b"POST", "%s: v/m %r %r" % (what, f["v"], f["m"]))
            check(f["e"].decode() == rec.endpoint and f["q"].decode() == rec.query,
                  "%s: e/q %r %r" % (what, f["e"], f["q"]))
            want_h = {"%s: %s" % (KEPT_NAMES[n], v) for n, vs in rec.headers.items() if n in KEPT_NAMES
                      for v in (vs if isinstance(vs, list) else [vs])}
            if rec.carrier == "x-sentry-auth":
                want_h.add("X-Sentry-Auth: " + rec.headers["x-sentry-auth"])
            got_h = set(f["h"].decode().splitlines())
            check(got_h == want_h, "%s: kept headers %r, want %r" % (what, got_h, want_h))
            check(f["ip"].decode() == rec.headers.get("x-forwarded-for", ""), "%s: ip %r" % (what, f["ip"]))
            check(f["k"].decode() == rec.sdk_key, "%s: k %r" % (what, f["k"]))
            check(f["c"].decode() == str(CARRIER[rec.carrier]), "%s: c %r" % (what, f["c"]))
            check(f["s"].decode() == ("1" if rec.secret else "0"), "%s: s %r" % (what, f["s"]))
            if rec.event_id:
                check(f["id"].decode() == rec.event_id, "%s: id %r, want %s" % (what, f["id"], rec.event_id))
            else:
                check(re.match(r"^[0-9a-f]{32}$", f["id"].decode()), "%s: id %r" % (what, f["id"]))
            check(set(f["cat"].decode().split(",")) == rec.cats, "%s: cat %r, want %r" % (what, f["cat"], rec.cats))
            check(abs(int(f["t"]) - now) < 120000, "%s: t %r is not the drain's time" % (what, f["t"]))
            check(int(f["t0"]) == int(round(rec.ts * 1000)), "%s: t0 %r, want %r" % (what, f["t0"], rec.ts))
            total += len(rec.body)
        groups = sq.command("XINFO", "GROUPS", stream)
        check([dict(zip(g[::2], g[1::2]))[b"name"] for g in groups] == [b"sentryq"], "%s: groups %r" % (stream, groups))
    check(int(sq.command("GET", PREFIX + "bytes")) == total,
          "%sbytes is not the moved bodies' total %d" % (PREFIX, total))


def check_delivered(moved):
    """Each moved record's request at the mock: by its body, byte for byte, or for an envelope whose
    header dsn sentryq rewrites, by its event id."""

    def find(rec, got):
        for r in got:
            body = rec_body(r)
            if (rec.event_id.encode() in body) if rec.carrier == "envelope" else body == rec.body:
                return r
        return None

    def all_found():
        got = S["mock"].requests()
        found = [find(rec, got) for rec in moved]
        return found if all(found) else None

    recs = wait_for(all_found, 30, "every moved event at the mock upstream")
    for rec, r in zip(moved, recs):
        real_key, real_secret = REAL[rec.route]
        prefix = "/ktv" if rec.route[0] == "ktv" else ""
        want_path = "%s/api/%d/%s" % (prefix, IDS[rec.route], rec.endpoint)
        check(r["path"] == want_path, "delivered to %r, want %r" % (r["path"], want_path))
        if rec.carrier == "x-sentry-auth":
            d = dict(parse_sentry_auth(rec_header(r, "X-Sentry-Auth")[0]))
            check(d.get("sentry_key") == real_key and d.get("sentry_secret") == real_secret,
                  "%s: forwarded credentials are not the real ones" % want_path)
        elif rec.carrier == "query":
            d = dict(query_pairs(r["query"]))
            check(d.get("sentry_key") == real_key, "%s: query key not the real one" % want_path)
            check(("sentry_secret" in d) == rec.secret and d.get("sentry_secret", real_secret) == real_secret,
                  "%s: query secret %r" % (want_path, d.get("sentry_secret")))
            check(not rec_header(r, "X-Sentry-Auth"), "%s: a second carrier was added" % want_path)
        else:
            head = json.loads(rec_body(r).split(b"\n", 1)[0])
            check(real_key in head.get("dsn", ""), "%s: envelope dsn %r" % (want_path, head.get("dsn")))
        for name in ("Content-Type", "Content-Encoding"):
            sent = [v for n, v in rec.headers.items() if n == name.lower()]
            check(rec_header(r, name) == sent, "%s: %s %r, want %r" % (want_path, name, rec_header(r, name), sent))
        if rec.carrier != "envelope":
            check(rec_body(r) == rec.body, "%s: the body is not byte for byte the old one" % want_path)


# ------------------------------------------------------------ the same entry as ingest's

def test_drained_entry_is_the_ingested_one():
    """The same SDK request, once sent to sentryq and once queued by the old script and drained:
    the two entries differ only in the received time, the old record's t0, and the client chain
    (ingest appends the peer address, which the old script never kept)."""
    old = Redis(persist=False).start()
    sq_redis = Redis(persist=False).start()
    port = free_port()
    prefix = "sq-eq:"
    conf_text = make_config(port, sq_redis.port, [
        upstream_conf("wow", "http://127.0.0.1:9", [project_conf("vod_be", KEY_VOD, 20, SEC_VOD),
                                                     project_conf("web", KEY_WEB, 21, SEC_WEB)])],
        prefix=prefix)
    conf = write("eq.conf", conf_text)
    sq_proc = Sentryq().start(conf_text, port)
    try:
        cases = []
        eid = os.urandom(16).hex()
        cases.append(("/api/1/store/", [("X-Sentry-Auth", xsa("wow", "vod_be")), ("Content-Type", "application/json"),
                                        ("User-Agent", "raven-python/6.10.0"), ("X-Forwarded-For", "198.51.100.4"),
                                        ("Accept-Language", "fr")], store_event(eid)))
        eid = os.urandom(16).hex()
        cases.append(("/api/1/store/", [("X-Sentry-Auth", xsa("wow", "vod_be")),
                                        ("Content-Type", "application/octet-stream")],
                      base64.b64encode(zlib.compress(store_event(eid)))))
        eid = os.urandom(16).hex()
        env = (json.dumps({"event_id": eid}) + "\n" + json.dumps({"type": "event"}) + "\n{}\n").encode()
        cases.append(("/api/21/envelope/?sentry_key=wow&sentry_version=7",
                      [("Content-Type", "application/x-sentry-envelope"), ("Content-Encoding", "gzip"),
                       ("Origin", "https://app.example")], gzip.compress(env)))
        env = (json.dumps({"event_id": os.urandom(16).hex(), "dsn": "http://%s@h/21" % KEY_WEB}) + "\n" +
               json.dumps({"type": "client_report"}) + "\n{}\n" + json.dumps({"type": "replay_event"}) + "\n{}\n")
        cases.append(("/api/21/envelope/", [("Content-Type", "application/x-sentry-envelope")], env.encode()))
        cases.append(("/api/20/security/?sentry_key=wow&sentry_secret=vod_be",
                      [("Content-Type", "application/csp-report"), ("Referer", "https://app.example/p")],
                      b'{"csp-report":{"document-uri":"https://app.example/p%s"}}' % os.urandom(4).hex().encode()))
        has_id = [True, True, True, True, False]
        t0 = int(time.time()) - 600
        for i, (target, headers, body) in enumerate(cases):
            r = request(port, "POST", target, headers, body)
            check(r.status == 200, "ingest answered %r for %s" % (r, target))
            lua_push(old, t0 + i, target, old_headers({k.lower(): v for k, v in headers}, body), body)
        p = drain(conf=conf, old=old)
        check(p.returncode == 0 and counts(p)["moved"] == len(cases), "drain: %r %r" % (p.stdout, p.stderr))
        entries = [f for v in streams(sq_redis, prefix).values() for _, f in v]
        check(len(entries) == 2 * len(cases), "%d entries, want %d" % (len(entries), 2 * len(cases)))
        for (target, headers, body), with_id in zip(cases, has_id):
            pair = [f for f in entries if f["b"] == body]
            check(len(pair) == 2, "%s: %d entries with its body" % (target, len(pair)))
            ingested, drained = sorted(pair, key=lambda f: "t0" in f)
            check("t0" not in ingested and int(drained["t0"]) // 1000 >= t0, "%s: t0 %r" % (target, drained.get("t0")))
            xff = dict(headers).get("X-Forwarded-For")
            check(ingested["ip"] == (("%s, 127.0.0.1" % xff) if xff else "127.0.0.1").encode(),
                  "%s: ingest ip %r" % (target, ingested["ip"]))
            check(drained["ip"] == (xff or "").encode(), "%s: drained ip %r" % (target, drained["ip"]))
            same = ("v", "m", "e", "q", "k", "c", "s", "cat", "b")
            for k in same:
                check(ingested.get(k) == drained.get(k), "%s: field %s differs: ingest %r, drain %r" % (
                    target, k, ingested.get(k), drained.get(k)))
            check(set(ingested["h"].split(b"\n")) == set(drained["h"].split(b"\n")),
                  "%s: kept headers differ: %r vs %r" % (target, ingested["h"], drained["h"]))
            if with_id:
                check(ingested["id"] == drained["id"], "%s: event ids differ %r %r" % (target, ingested["id"],
                                                                                     drained["id"]))
            check(set(ingested) | {"t0"} == set(drained), "%s: field names %r vs %r" % (target, sorted(ingested),
                                                                                       sorted(drained)))
    finally:
        sq_proc.stop()
        old.kill()
        sq_redis.kill()


# ------------------------------------------------------------ a crash in the middle

N_CRASH = 20000


def test_sigkill_mid_drain_loses_nothing():
    old = Redis(persist=False).start()
    sq_redis = Redis(persist=False).start()
    prefix = "sq-crash:"
    conf = write("crash.conf", relay_conf(free_port(), sq_redis.port, prefix) + S["imported"])
    stream = prefix + "q:wow:vod_be"
    t0 = int(time.time()) - 2 * N_CRASH
    hdr = json.dumps(old_headers({"x-sentry-auth": xsa("wow", "vod_be"), "content-type": "application/json"},
                                 store_event("%032x" % 0)))  # every body is as long as this one
    c = old.client()
    try:
        batch = []
        for i in range(N_CRASH):
            batch += [str(t0 + i), "/api/1/store/", hdr, store_event("%032x" % i)]
            if len(batch) == 2000:
                c.command("EVAL", LUA_PUSH_MANY, "2", LIST, BODY, *batch)
                batch = []
        if batch:
            c.command("EVAL", LUA_PUSH_MANY, "2", LIST, BODY, *batch)
    finally:
        c.close()
    check(old.command("LLEN", LIST) == N_CRASH, "the old list was not filled")

    log = open(os.path.join(S["dir"], "crash-drain.log"), "wb")
    proc = spawn([BIN, "-c", conf, "legacy", "drain", "--from", "127.0.0.1:%d" % old.port],
                 stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_for(lambda: proc.poll() is not None or sq_redis.command("XLEN", stream) >= 3000, 120,
                 "3000 records moved")
        check(proc.poll() is None, "the drain finished before it could be killed (exit %r)" % proc.returncode)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()

    def ids_in_old():
        return [json.loads(e)["timestamp"] - t0 for e in old_list(old)]

    def ids_in_stream():
        return [int(json.loads(f["b"])["event_id"], 16) for _, f in streams(sq_redis, prefix).get(stream, [])]

    in_old, in_stream = ids_in_old(), ids_in_stream()
    s_old, s_stream = set(in_old), set(in_stream)
    lost = set(range(N_CRASH)) - s_old - s_stream
    both = s_old & s_stream
    print("# crash: killed after %d moved: %d in the old list, %d in sentryq's queue, %d in both, %d lost" % (
        len(s_stream - s_old), len(s_old), len(s_stream), len(both), len(lost)), flush=True)
    check(not lost, "%d records lost by the SIGKILL (e.g. %r)" % (len(lost), sorted(lost)[:5]))
    check(len(in_old) == len(s_old) and len(in_stream) == len(s_stream), "a record twice in one queue after the kill")
    check(len(both) <= 1, "%d records in both queues: only the one in flight may be" % len(both))
    check(in_old == sorted(in_old), "the old list is out of order")
    for i in in_old[:50] + in_old[-50:]:
        check(old.command("EXISTS", BODY + str(t0 + i)) == 1, "record %d in the old list lost its body" % i)

    p = run_cli(["-c", conf, "legacy", "drain", "--from", "127.0.0.1:%d" % old.port], timeout=300)
    check(p.returncode == 0, "the re-run exited %r: %r %r" % (p.returncode, p.stdout[-500:], p.stderr[-500:]))
    got = counts(p)
    check(got["moved"] == len(s_old) and got["missing"] == got["unroutable"] == got["malformed"] == 0,
          "re-run counts %r, want %d moved" % (got, len(s_old)))
    check(old.command("LLEN", LIST) == 0, "the old list is not empty after the re-run")
    check(old.command("DBSIZE") == 0, "body keys left in the old Redis: %r" % old.command("DBSIZE"))
    final = ids_in_stream()
    dups = len(final) - len(set(final))
    print("# crash: after the re-run %d entries, %d records, %d duplicates, %d lost" % (
        len(final), len(set(final)), dups, N_CRASH - len(set(final))), flush=True)
    check(set(final) == set(range(N_CRASH)), "records missing after the re-run: %d" % (N_CRASH - len(set(final))))
    check(dups == len(both), "%d duplicates, want the %d that were in both queues" % (dups, len(both)))
    old.kill()
    sq_redis.kill()


# ------------------------------------------------------------ options, limits and failures

def test_list_and_prefix_options_and_queue_full():
    old = Redis(persist=False).start()
    sq_redis = Redis(persist=False).start()
    prefix = "sq-opt:"
    body = store_event("%032x" % 7)
    conf = write("opt.conf", relay_conf(free_port(), sq_redis.port, prefix, "queue = { max_bytes = %d; };\n" % (
        3 * len(body))) + S["imported"])
    t0 = int(time.time()) - 100
    for i in range(5):
        old.command("EVAL", LUA_PUSH, "2", "my:list", "my:bodies/", str(t0 + i), "/api/1/store/",
                    json.dumps(old_headers({"x-sentry-auth": xsa("wow", "vod_be")}, body)), body, "1")
    # the default names find nothing
    p = drain(conf=conf, old=old)
    check(p.returncode == 0 and counts(p)["moved"] == 0, "default list: %r %r" % (p.stdout, p.stderr))
    # queue.max_bytes holds three bodies: three move, then the drain stops and keeps the rest
    p = drain("--list", "my:list", "--body-prefix=my:bodies/", conf=conf, old=old)
    check(p.returncode == 1, "a full queue exited %r" % p.returncode)
    check("queue.max_bytes" in p.stderr and "stopped after 3 of 5" in p.stderr, "stderr %r" % p.stderr)
    check(counts(p)["moved"] == 3, "moved %r before the queue was full" % counts(p))
    check(old.command("LLEN", "my:list") == 2 and sq_redis.command("XLEN", prefix + "q:wow:vod_be") == 3,
          "after a full queue: %r in the old list, %r queued" % (old.command("LLEN", "my:list"),
                                                                sq_redis.command("XLEN", prefix + "q:wow:vod_be")))
    check(old.command("EXISTS", "my:bodies/%d" % (t0 + 4)) == 1, "a kept record lost its body")
    # room again (the relay forwarded): the rest moves
    sq_redis.command("SET", prefix + "bytes", "0")
    p = drain("--list=my:list", "--body-prefix", "my:bodies/", conf=conf, old=old)
    check(p.returncode == 0 and counts(p)["moved"] == 2 and old.command("LLEN", "my:list") == 0,
          "the rest: %r %r" % (p.stdout, p.stderr))
    # another db of the old Redis
    c = old.client()
    c.command("SELECT", "4")
    c.command("EVAL", LUA_PUSH, "2", LIST, BODY, str(t0 + 9), "/api/1/store/",
              json.dumps(old_headers({"x-sentry-auth": xsa("wow", "vod_be")}, body)), body, "1")
    c.close()
    p = run_cli(["-c", conf, "legacy", "drain", "--from", "127.0.0.1:%d/4" % old.port])
    check(p.returncode == 0 and counts(p)["moved"] == 1, "--from .../4: %r %r" % (p.stdout, p.stderr))
    old.kill()
    sq_redis.kill()


def test_redis_failures_keep_everything():
    old = Redis(persist=False).start()
    body = store_event("%032x" % 1)
    old.command("EVAL", LUA_PUSH, "2", LIST, BODY, "1700000000", "/api/1/store/",
                json.dumps(old_headers({"x-sentry-auth": xsa("wow", "vod_be")}, body)), body, "1")
    conf = write("down.conf", relay_conf(free_port(), free_port(), "sq-down:") + S["imported"])
    p = drain(conf=conf, old=old)
    check(p.returncode == 1 and "sentryq's Redis" in p.stderr, "sentryq's Redis away: %r %r" % (p.returncode, p.stderr))
    check(old.command("LLEN", LIST) == 1, "the record left the old list with sentryq's Redis away")
    # a dry run needs only the old Redis
    p = drain("--dry-run", conf=conf, old=old)
    check(p.returncode == 0 and counts(p)["moved"] == 1,
          "dry run without sentryq's Redis: %r %r" % (p.stdout, p.stderr))
    p = run_cli(["-c", S["conf"], "legacy", "drain", "--from", "127.0.0.1:%d" % free_port()])
    check(p.returncode == 1 and "old pipeline's Redis" in p.stderr and "cannot connect" in p.stderr,
          "old Redis away: %r %r" % (p.returncode, p.stderr))
    old.command("DEL", LIST)
    old.command("SET", LIST, "not a list")
    p = drain(conf=S["conf"], old=old)
    check(p.returncode == 1 and "WRONGTYPE" in p.stderr, "a list key of another type: %r %r" % (p.returncode, p.stderr))
    old.kill()


def test_old_redis_password():
    pw = "old-redis-pw-9f8e"
    old = Redis(persist=False, password=pw).start()
    body = store_event("%032x" % 2)
    c = old.client()
    c.command("EVAL", LUA_PUSH, "2", LIST, BODY, "1700000002", "/api/1/store/",
              json.dumps(old_headers({"x-sentry-auth": xsa("wow", "vod_be")}, body)), body, "1")
    c.close()
    p = drain("--dry-run", old=old)
    check(p.returncode == 1 and "old pipeline's Redis" in p.stderr, "no password: %r %r" % (p.returncode, p.stderr))
    for bad in ("wrong-pw-x1", ""):
        p = drain("--dry-run", old=old, env=dict(os.environ, SENTRYQ_LEGACY_REDIS_PASSWORD=bad))
        check(p.returncode == 1, "password %r: exit %r" % (bad, p.returncode))
        check("wrong-pw-x1" not in p.stdout + p.stderr, "the password was echoed: %r" % p.stderr)
    p = drain(old=old, env=dict(os.environ, SENTRYQ_LEGACY_REDIS_PASSWORD=pw))
    check(p.returncode == 0 and counts(p)["moved"] == 1, "with the password: %r %r" % (p.stdout, p.stderr))
    check(pw not in p.stdout + p.stderr, "the password was echoed")
    old.kill()


def test_usage():
    base = ["-c", S["conf"], "legacy"]
    for args in ([], ["frob"], ["drain"], ["drain", "--from"], ["drain", "--from", "localhost"],
                 ["drain", "--from", "h:0"], ["drain", "--from", "h:1/x"], ["drain", "--from", "h:1", "--bogus"],
                 ["drain", "--from", "h:1", "--list", ""], ["drain", "--from", "h:1", "--body-prefix"],
                 ["drain", "--from", "h:1", "extra"]):
        p = run_cli(base + args)
        check(p.returncode == 2, "legacy %r exited %r, want 2" % (args, p.returncode))
        check("usage: sentryq -c FILE legacy drain --from HOST:PORT[/DB]" in p.stderr,
              "legacy %r: %r" % (args, p.stderr))
    p = run_cli(["-h"])
    check("legacy drain --from HOST:PORT[/DB]" in p.stdout, "-h does not describe legacy drain: %r" % p.stdout)


if __name__ == "__main__":
    main(globals())
