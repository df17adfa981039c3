#!/usr/bin/python3
"""test_ingest_errors.py - every rejection sentryq answers itself (401/400/403/413/503), /status,
counters, and that bad input never corrupts or leaks into what gets forwarded."""

import json
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id  # noqa: E402
from sqtest.http import request  # noqa: E402
from sqtest.mock import Mock, rec_body  # noqa: E402
from sqtest.proc import TestFailure, check, free_port, wait_for  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq, make_config, project_conf, status_counters, upstream_conf  # noqa: E402

KEY_VOD, SEC_VOD = "a6f431e198734105aef464f6e702351f", "563b78f7bc1941828df0e5ebd79cc17a"
MAX_BODY = 65536
AUTH = "Sentry sentry_key=wow, sentry_version=7, sentry_client=errors-test/1.0, sentry_secret=vod_be"
COUNTERS = ("received", "enqueued", "forwarded", "retried", "dead", "rejected")

S = {}


def setup_module():
    S["redis"] = Redis().start()
    S["mock"] = Mock().start()
    S["port"] = free_port()
    ups = [upstream_conf("wow", S["mock"].url, [project_conf("vod_be", KEY_VOD, 20, SEC_VOD)])]
    cfg = make_config(S["port"], S["redis"].port, ups, max_body=MAX_BODY, buffer_bytes=0)
    S["sq"] = Sentryq().start(cfg, S["port"])


def teardown_module():
    if "sq" in S:
        S["sq"].stop()


def good_body(eid, size=None):
    doc = {"event_id": eid, "message": "good \u00e9v\u00e9nement", "level": "error"}
    body = json.dumps(doc, ensure_ascii=False).encode()
    if size is not None:
        doc["extra"] = {"pad": ""}
        base = len(json.dumps(doc, ensure_ascii=False).encode())
        doc["extra"]["pad"] = "x" * (size - base)
        body = json.dumps(doc, ensure_ascii=False).encode()
        assert len(body) == size, (len(body), size)
    return body


def post(body, headers=None, target="/api/20/store/", chunked=False):
    hdrs = [("Content-Type", "application/json")]
    hdrs += [("X-Sentry-Auth", AUTH)] if headers is None else headers
    return request(S["port"], "POST", target, hdrs, body, chunked=chunked)


def send_good(size=None, chunked=False):
    eid = new_event_id()
    body = good_body(eid, size)
    r = post(body, chunked=chunked)
    check(r.status == 200, "good request answered %r" % r)
    check(r.json().get("id") == eid, "answer %r, want id %s" % (r.body, eid))
    return eid, body


def expect_error(r, status, what):
    check(r.status == status, "%s: want %d, got %r" % (what, status, r))
    check((r.header("Content-Type") or "").startswith("application/json"),
          "%s: error Content-Type %r" % (what, r.header("Content-Type")))
    try:
        doc = json.loads(r.body)
    except ValueError:
        raise TestFailure("%s: error body is not JSON: %r" % (what, r.body[:200]))
    check(isinstance(doc, dict) and isinstance(doc.get("detail"), str) and doc["detail"],
          "%s: error body lacks detail: %r" % (what, r.body[:200]))
    check("vod_be" not in doc["detail"], "%s: detail echoes the secret: %r" % (what, doc["detail"]))
    return doc


def counters():
    return status_counters(S["sq"])


def delta(c0, c1):
    return {k: c1.get(k, 0) - c0.get(k, 0) for k in COUNTERS}


def records_by_eid(eids, timeout=15):
    """Wait until every eid reached the mock with a 2xx; return {eid: [bodies]} of everything."""
    def ready():
        got = {}
        for rec in S["mock"].requests():
            body = rec_body(rec)
            try:
                eid = json.loads(body).get("event_id")
            except (ValueError, AttributeError):
                eid = None
            got.setdefault(eid, []).append((rec, body))
        return got if all(any(isinstance(rc["status"], int) and rc["status"] < 300
                              for rc, _ in got.get(e, [])) for e in eids) else None
    return wait_for(ready, timeout, "events %s at the upstream" % ", ".join(eids))


# ------------------------------------------------------------ tests

def test_status_shape():
    st, doc = S["sq"].status()
    check(st == 200, "/status %d" % st)
    check(doc.get("status") == "ok", "status %r" % doc.get("status"))
    check(isinstance(doc.get("version"), str) and doc["version"], "version %r" % doc.get("version"))
    check(isinstance(doc.get("uptime_s"), (int, float)) and doc["uptime_s"] >= 0, "uptime_s %r" % doc.get("uptime_s"))
    check(doc.get("redis", {}).get("connected") is True, "redis %r" % doc.get("redis"))
    check(isinstance(doc.get("queue", {}).get("pending"), int), "queue %r" % doc.get("queue"))
    for k in COUNTERS:
        check(isinstance(doc.get("counters", {}).get(k), int), "counters.%s missing: %r" % (k, doc.get("counters")))


def test_missing_auth_401():
    expect_error(post(good_body(new_event_id()), headers=[]), 401, "store without auth")
    env = b'{"event_id":"%s"}\n{"type":"event","length":2}\n{}' % new_event_id().encode()
    expect_error(post(env, headers=[], target="/api/20/envelope/"), 401, "envelope without auth or dsn")
    expect_error(post(good_body(new_event_id()), headers=[("X-Sentry-Auth", "Bearer abc")]), 401,
                 "X-Sentry-Auth without the Sentry prefix")


def test_two_carriers_401():
    r = post(good_body(new_event_id()), target="/api/20/store/?sentry_key=wow&sentry_version=7")
    expect_error(r, 401, "X-Sentry-Auth plus query sentry_key")


def test_version_8_400():
    hdr = [("X-Sentry-Auth", AUTH.replace("sentry_version=7", "sentry_version=8"))]
    expect_error(post(good_body(new_event_id()), headers=hdr), 400, "sentry_version=8 in header")
    r = post(good_body(new_event_id()), headers=[],
             target="/api/20/store/?sentry_key=wow&sentry_secret=vod_be&sentry_version=8")
    expect_error(r, 400, "sentry_version=8 in query")


def test_body_limit_413_content_length():
    expect_error(post(good_body(new_event_id(), MAX_BODY + 1)), 413, "Content-Length body over the limit")
    eid, _ = send_good(size=MAX_BODY)  # exactly at the limit is fine
    records_by_eid([eid])


def test_body_limit_413_chunked():
    expect_error(post(good_body(new_event_id(), MAX_BODY + 1), chunked=True), 413,
                 "chunked body over the limit")
    expect_error(post(good_body(new_event_id(), 4 * MAX_BODY), chunked=True), 413,
                 "chunked body far over the limit")
    eid, _ = send_good(size=MAX_BODY, chunked=True)
    records_by_eid([eid])


def test_counters_move():
    S["mock"].reset()
    c0 = counters()
    e1, _ = send_good()
    expect_error(post(good_body(new_event_id()), headers=[]), 401, "no auth")
    expect_error(post(good_body(new_event_id()),
                      headers=[("X-Sentry-Auth", AUTH.replace("=7", "=8"))]), 400, "version 8")
    expect_error(post(good_body(new_event_id()),
                      headers=[("X-Sentry-Auth", AUTH.replace("key=wow", "key=nobody"))]), 403, "unknown key")
    e2, _ = send_good()
    d = delta(c0, counters())
    check(d["received"] == 5, "received moved by %d, want 5 (%r)" % (d["received"], d))
    check(d["enqueued"] == 2, "enqueued moved by %d, want 2 (%r)" % (d["enqueued"], d))
    check(d["rejected"] == 3, "rejected moved by %d, want 3 (%r)" % (d["rejected"], d))
    records_by_eid([e1, e2])
    wait_for(lambda: delta(c0, counters())["forwarded"] == 2, 10, "counters.forwarded +2")
    d = delta(c0, counters())
    check(d["dead"] == 0 and d["retried"] == 0, "dead/retried moved: %r" % d)


def raw_send(data, read=True):
    """Write raw bytes on a fresh connection, then read until close (bounded)."""
    s = socket.create_connection(("127.0.0.1", S["port"]), timeout=5)
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if read:
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
    finally:
        s.close()


def test_garbage_between_good_requests():
    """good, then every kind of bad input, then good: the upstream gets exactly the two good
    events, byte-identical."""
    S["mock"].reset()
    e1, b1 = send_good()
    expect_error(post(good_body(new_event_id()), headers=[]), 401, "no auth")
    expect_error(post(good_body(new_event_id()), target="/api/20/store/?sentry_key=wow"), 401, "two carriers")
    expect_error(post(good_body(new_event_id()), headers=[("X-Sentry-Auth", AUTH.replace("=7", "=8"))]),
                 400, "version 8")
    expect_error(post(good_body(new_event_id(), MAX_BODY + 100)), 413, "too large")
    expect_error(post(good_body(new_event_id(), MAX_BODY + 100), chunked=True), 413, "too large chunked")
    expect_error(post(good_body(new_event_id()),
                      headers=[("X-Sentry-Auth", AUTH.replace("key=wow", "key=nobody"))]), 403, "unknown key")
    bad_eid = new_event_id()
    trunc = good_body(bad_eid)
    head = ("POST /api/20/store/ HTTP/1.1\r\nHost: x\r\nX-Sentry-Auth: %s\r\nContent-Length: %d\r\n\r\n"
            % (AUTH, len(trunc))).encode()
    raw_send(head + trunc[:len(trunc) // 2])  # body cut short, connection closed
    raw_send(b"\x00\xff\xfeGARBAGE \x01\x02 HTTP/9.9\r\n\r\n" + os.urandom(512))
    raw_send(b"POST /api/20/store/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Sentry-Auth: "
             + AUTH.encode() + b"\r\n\r\nzz\r\nnot hex chunk\r\n0\r\n\r\n")
    chunk_eid = new_event_id()
    cb = good_body(chunk_eid)
    raw_send(b"POST /api/20/store/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Sentry-Auth: "
             + AUTH.encode() + b"\r\n\r\n%x\r\n" % len(cb) + cb[:10])  # chunk cut short
    e2, b2 = send_good()
    got = records_by_eid([e1, e2])
    bodies = {eid: [b for _, b in lst] for eid, lst in got.items()}
    check(bodies.get(e1) == [b1], "first good event not forwarded exactly once intact")
    check(bodies.get(e2) == [b2], "second good event not forwarded exactly once intact")
    extra = {k: len(v) for k, v in bodies.items() if k not in (e1, e2)}
    check(not extra, "upstream got other requests: %r" % extra)
    check(S["sq"].alive(), "sentryq died on garbage")
    check(S["sq"].status()[0] == 200, "/status not 200 after garbage")


def test_clients_vanishing_mid_request():
    """Clients that reset or close before the answer, or mid-body: sentryq stays up, a body cut
    short is never forwarded, and every forwarded body is a complete one."""
    import struct
    import threading
    S["mock"].reset()
    full, partial = {}, set()
    lock = threading.Lock()

    def one(i):
        eid = new_event_id()
        body = good_body(eid, 200 + (i * 37) % 5000)
        cut = i % 4 == 0
        s = socket.create_connection(("127.0.0.1", S["port"]), timeout=5)
        if i % 2 == 0:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        head = ("POST /api/20/store/ HTTP/1.1\r\nHost: x\r\nX-Sentry-Auth: %s\r\nContent-Length: %d\r\n\r\n"
                % (AUTH, len(body))).encode()
        try:
            s.sendall(head + (body[:len(body) // 2] if cut else body))
        finally:
            s.close()
        with lock:
            if cut:
                partial.add(eid)
            else:
                full[eid] = body

    def burst(base):
        for i in range(base, base + 60):
            one(i)

    threads = [threading.Thread(target=burst, args=(k * 60,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    check(S["sq"].alive(), "sentryq died")
    e_last, _ = send_good()
    records_by_eid([e_last])
    wait_for(lambda: S["sq"].status()[1]["queue"]["pending"] == 0, 30, "queue.pending 0")
    bad = []
    for rec in S["mock"].requests():
        body = rec_body(rec)
        try:
            eid = json.loads(body)["event_id"]
        except (ValueError, KeyError):
            bad.append("unparsable body of %d bytes forwarded" % len(body))
            continue
        if eid in partial:
            bad.append("a body cut short was forwarded (%s)" % eid)
        elif eid != e_last and full.get(eid) != body:
            bad.append("forwarded body differs from the one sent (%s)" % eid)
    check(not bad, "%d problem(s): %s" % (len(bad), bad[:5]))
    print("# %d of %d complete requests from vanished clients were forwarded"
          % (sum(1 for r in S["mock"].requests()) - 1, len(full)))


def test_redis_down_503_then_recovers():
    """buffer_bytes = 0: with Redis gone, ingest answers 503 + Retry-After and /status is 503
    degraded; what Redis held survives; once Redis is back, everything flows again."""
    sq, redis, mock = S["sq"], S["redis"], S["mock"]
    mock.reset()
    mock.program(default={"status": 503})
    held = [send_good()[0] for _ in range(3)]  # queued, upstream refuses for now
    wait_for(lambda: mock.count() >= 1, 10, "a first forward attempt")
    redis.stop()
    wait_for(lambda: sq.status()[0] == 503, 15, "/status 503 with Redis stopped")
    st, doc = sq.status()
    check(doc.get("status") == "degraded", "status %r, want degraded" % doc.get("status"))
    check(doc.get("redis", {}).get("connected") is False, "redis %r" % doc.get("redis"))
    c0 = counters()
    r = post(good_body(new_event_id()))
    doc = expect_error(r, 503, "ingest with Redis down")
    ra = r.header("Retry-After")
    check(ra is not None and ra.strip().isdigit(), "503 without an integer Retry-After: %r" % ra)
    check(delta(c0, counters())["enqueued"] == 0, "enqueued moved while Redis was down")
    redis.start()
    wait_for(lambda: sq.status()[0] == 200, 30, "/status 200 after Redis restarted")
    check(sq.status()[1].get("status") == "ok", "status not ok after recovery")
    mock.program(default={"status": 200})
    e_new, _ = send_good()
    got = records_by_eid(held + [e_new], timeout=30)
    check(all(got.get(e) for e in held), "queued events lost across the Redis restart")
    wait_for(lambda: sq.status()[1]["queue"]["pending"] == 0, 15, "queue.pending 0")


if __name__ == "__main__":
    main(globals())
