#!/usr/bin/python3
"""test_restart.py - what sentryq acknowledged survives SIGKILL and SIGTERM: every event reaches
the upstream after a restart on the same Redis, intact; duplicates are counted and reported."""

import concurrent.futures
import gzip
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import HEX32, decode_body, new_event_id  # noqa: E402
from sqtest.http import KeepAlive, request  # noqa: E402
from sqtest.mock import Mock, rec_body, rec_header  # noqa: E402
from sqtest.proc import TestFailure, check, free_port, port_open, wait_for  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq, make_config, project_conf, status_counters, upstream_conf  # noqa: E402

KEY_VOD, SEC_VOD = "a6f431e198734105aef464f6e702351f", "563b78f7bc1941828df0e5ebd79cc17a"
KEY_WEB = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
AUTH = "Sentry sentry_key=wow, sentry_version=7, sentry_client=restart-test/1.0, sentry_secret=vod_be"
N = 200

S = {}


def setup_module():
    S["redis"] = Redis().start()
    S["mock"] = Mock().start()
    S["port"] = free_port()
    ups = [upstream_conf("wow", S["mock"].url, [project_conf("vod_be", KEY_VOD, 20, SEC_VOD),
                                                   project_conf("web", KEY_WEB, 1)])]
    S["cfg"] = make_config(S["port"], S["redis"].port, ups, retry_initial=0.2, retry_max=1.0,
                           claim_idle=1.0, fwd_timeout=2.0)


def teardown_module():
    if "sq" in S:
        S["sq"].stop()


def start(extra=""):
    sq = S.get("sq")
    if sq is None or not sq.alive():
        S["sq"] = Sentryq().start(S["cfg"] + extra, S["port"])
    return S["sq"]


def fresh(program=None):
    """Isolate a test: no sentryq running, empty Redis, mock cleared and programmed."""
    sq = S.get("sq")
    if sq is not None:
        sq.kill9()
    S["redis"].command("FLUSHALL")
    S["mock"].reset()
    if program:
        S["mock"].program(**program)


def pending(sq):
    return sq.status()[1]["queue"]["pending"]


def make_request(i):
    """Varied requests: plain store, gzip store, envelope via query (rule 2), some large."""
    eid = new_event_id()
    pad = "p%d-" % i * (1 + (i % 7) * 300 + (20000 if i % 50 == 0 else 0))
    doc = {"event_id": eid, "message": "restart %d \u263a" % i, "extra": {"pad": pad}}
    raw = json.dumps(doc, ensure_ascii=False).encode()
    kind = i % 3
    if kind == 0:
        return eid, "/api/1/store/", [("X-Sentry-Auth", AUTH), ("Content-Type", "application/json")], raw
    if kind == 1:
        return eid, "/api/1/store/", [("X-Sentry-Auth", AUTH), ("Content-Type", "application/json"),
                                      ("Content-Encoding", "gzip")], gzip.compress(raw)
    env = (json.dumps({"event_id": eid, "sent_at": "2026-01-01T00:00:00Z"}).encode() + b"\n"
           + b'{"type":"event","length":%d}\n' % len(raw) + raw + b"\n")
    q = "sentry_version=7&sentry_key=wow&sentry_client=restart%2F1"
    return eid, "/api/1/envelope/?" + q, [("Content-Type", "text/plain;charset=UTF-8")], env


def post_all(n):
    reqs = [make_request(i) for i in range(n)]

    def send(req):
        eid, target, hdrs, body = req
        r = request(S["port"], "POST", target, hdrs, body)
        return r

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        answers = list(ex.map(send, reqs))
    for (eid, target, hdrs, _), r in zip(reqs, answers):
        check(r.status == 200, "%s answered %r" % (target, r))
        gz = "Content-Encoding" in dict(hdrs)  # the spec binds the answer id only for plain bodies
        check(r.json().get("id") == eid or (gz and HEX32.match(r.json().get("id", ""))),
              "answer %r for %s" % (r.body, eid))
    return {eid: body for eid, _, _, body in reqs}


def delivered(sent):
    """{eid: [bodies answered 2xx]} for the sent events; non-matching bodies under None."""
    out = {}
    for rec in S["mock"].requests():
        if not (isinstance(rec["status"], int) and 200 <= rec["status"] < 300):
            continue
        body = rec_body(rec)
        eid = next((e for e in sent if e.encode() in body[:200]), None)
        if eid is None:
            try:
                dec = decode_body(body, (rec_header(rec, "Content-Encoding") or [""])[0])
                eid = next((e for e in sent if e.encode() in dec[:200]), None)
            except Exception:
                eid = None
        out.setdefault(eid, []).append(body)
    return out


def wait_all_delivered(sent, timeout):
    def done():
        d = delivered(sent)
        return d if all(d.get(e) for e in sent) else None
    try:
        return wait_for(done, timeout, "all %d events delivered" % len(sent), interval=0.2)
    except TestFailure:
        d = delivered(sent)
        missing = [e for e in sent if not d.get(e)]
        raise TestFailure("%d of %d events never delivered (e.g. %s)" % (len(missing), len(sent), missing[:3]))


def check_intact(sent, got, what):
    corrupt = [e for e in sent if any(b != sent[e] for b in got.get(e, []))]
    stray = len(got.get(None, []))
    dups = sum(len(got.get(e, [])) - 1 for e in sent if got.get(e))
    print("# %s: %d events, %d duplicate deliveries, %d corrupt, %d stray" % (what, len(sent), dups,
                                                                                len(corrupt), stray))
    check(not corrupt, "%d events arrived corrupted (e.g. %s)" % (len(corrupt), corrupt[:3]))
    check(not stray, "%d upstream requests match no sent event" % stray)
    return dups


def test_sigterm_idle_exits_0_promptly():
    fresh()
    sq = start()
    t0 = time.monotonic()
    rc = sq.stop(signal.SIGTERM, timeout=10)
    took = time.monotonic() - t0
    check(rc == 0, "exit code %r after SIGTERM, want 0" % rc)
    print("# SIGTERM idle exit took %.2fs" % took)
    check(took < 5, "SIGTERM with nothing in flight took %.1fs" % took)
    check(not port_open(S["port"]), "port still open after exit")


def test_sigint_idle_exits_0():
    fresh()
    sq = start()
    rc = sq.stop(signal.SIGINT, timeout=10)
    check(rc == 0, "exit code %r after SIGINT, want 0" % rc)


def test_kill9_with_backlog_then_redeliver():
    mock = S["mock"]
    fresh({"default": {"status": 503}})
    sq = start()
    sent = post_all(N)
    wait_for(lambda: mock.count() >= 5, 15, "forward attempts against the 503 upstream")
    st = sq.status()[1]
    check(st["counters"]["enqueued"] == N, "enqueued %r, want %d" % (st["counters"]["enqueued"], N))
    wait_for(lambda: pending(sq) > 0, 10, "queue.pending > 0 while the upstream refuses everything")
    print("# queue.pending %d with %d refused events queued" % (pending(sq), N))
    sq.kill9()
    mock.reset()  # default: 200
    sq = start()
    got = wait_all_delivered(sent, 60)
    check_intact(sent, got, "kill -9 redelivery")
    wait_for(lambda: pending(sq) == 0, 20, "queue.pending 0 after delivery")


def test_kill9_while_upstream_stalls():
    """Forwards in flight (upstream stalls) when sentryq dies: they are delivered after restart."""
    mock = S["mock"]
    fresh({"default": {"stall": 20}})
    sq = start()
    sent = post_all(30)
    wait_for(lambda: mock.count() >= 1, 15, "a forward in flight")
    sq.kill9()
    mock.reset()
    start()
    got = wait_all_delivered(sent, 60)
    check_intact(sent, got, "kill -9 during stalled forwards")


def test_sigterm_with_backlog_exits_0_and_keeps_entries():
    mock = S["mock"]
    fresh({"default": {"status": 503}})
    sq = start()
    sent = post_all(20)
    wait_for(lambda: mock.count() >= 1, 15, "a forward attempt")
    rc = sq.stop(signal.SIGTERM, timeout=20)
    check(rc == 0, "exit code %r after SIGTERM with a backlog, want 0" % rc)
    mock.reset()
    sq = start()
    got = wait_all_delivered(sent, 60)
    check_intact(sent, got, "SIGTERM backlog redelivery")
    wait_for(lambda: pending(sq) == 0, 20, "queue.pending 0 after delivery")


def test_retry_until_2xx():
    """503 x3 then 200: the entry stays queued and is retried until accepted; retried counter moves."""
    mock = S["mock"]
    fresh({"rules": [{"path_contains": "/api/", "responses": [{"status": 503, "count": 3},
                                                                {"status": 200}]}]})
    sq = start()
    c0 = status_counters(sq)
    sent = post_all(1)
    got = wait_all_delivered(sent, 30)
    check_intact(sent, got, "retry until 2xx")
    attempts = mock.requests()
    check([r["status"] for r in attempts][:4] == [503, 503, 503, 200],
          "attempt statuses %r" % [r["status"] for r in attempts])
    gaps = [b["t"] - a["t"] for a, b in zip(attempts, attempts[1:])]
    check(all(g >= 0.1 for g in gaps), "retries not backed off (gaps %r, retry_initial 0.2)" % gaps)
    c1 = status_counters(sq)
    check(c1["retried"] - c0["retried"] >= 3, "retried moved by %d, want >= 3" % (c1["retried"] - c0["retried"]))
    check(c1["forwarded"] - c0["forwarded"] == 1, "forwarded moved by %d" % (c1["forwarded"] - c0["forwarded"]))


def test_retry_after_drop_429_502():
    """Connection dropped, 429 with Retry-After, 502, then 200: delivered once, after each failure."""
    mock = S["mock"]
    fresh({"rules": [{"path_contains": "/api/", "responses": [
        {"drop": True}, {"status": 429, "headers": {"Retry-After": "1"}}, {"status": 502}, {"status": 200}]}]})
    start()
    sent = post_all(1)
    got = wait_all_delivered(sent, 30)
    check_intact(sent, got, "drop/429/502 then 200")
    st = [r["status"] for r in mock.requests()]
    check(st == ["drop", 429, 502, 200], "attempts %r, want drop, 429, 502, 200" % st)


def test_forward_timeout_then_retry():
    """The upstream holds the first attempt past forward.timeout (2 s): retried, delivered once."""
    mock = S["mock"]
    fresh({"rules": [{"path_contains": "/api/", "responses": [{"stall": 15}, {"status": 200}]}]})
    start()
    sent = post_all(1)
    got = wait_all_delivered(sent, 20)
    check_intact(sent, got, "stall past forward.timeout then 200")
    recs = mock.requests()
    check([r["status"] for r in recs] == ["stall", 200], "attempts %r" % [r["status"] for r in recs])
    gap = recs[1]["t"] - recs[0]["t"]
    check(1.5 <= gap < 12, "retry %.1fs after the stalled attempt, forward.timeout is 2 s" % gap)


def test_sigterm_while_forwards_stall():
    """SIGTERM with forwards stuck upstream: exit 0 within shutdown_timeout (3 s) + slack; the
    stuck entries stay queued and are delivered by the next run."""
    mock = S["mock"]
    fresh({"default": {"stall": 30}})
    sq = start("shutdown_timeout = 3.0;\n")
    sent = post_all(5)
    wait_for(lambda: mock.count() >= 1, 15, "a forward stuck upstream")
    t0 = time.monotonic()
    rc = sq.stop(signal.SIGTERM, timeout=15)
    took = time.monotonic() - t0
    print("# SIGTERM with stuck forwards exit took %.2fs" % took)
    check(rc == 0, "exit code %r after SIGTERM, want 0" % rc)
    check(took < 8, "exit took %.1fs with shutdown_timeout 3 s" % took)
    mock.reset()
    start()
    got = wait_all_delivered(sent, 60)
    check_intact(sent, got, "SIGTERM with stuck forwards")


def test_sigterm_not_ready_at_once_then_second_signal_exits():
    """SIGTERM: /status on a connection already open answers 503 "stopping" at once, and the
    listening socket stays open while forwards stuck upstream are given shutdown_timeout (20 s
    here): a new connection's ready check answers 503, so a load balancer sees the drain. A second
    SIGTERM exits at once. Nothing is lost: the next run delivers everything."""
    mock = S["mock"]
    fresh({"default": {"stall": 30}})
    sq = start("shutdown_timeout = 20.0;\n")
    sent = post_all(3)
    wait_for(lambda: mock.count() >= 1, 15, "a forward stuck upstream")
    ka = KeepAlive(S["port"])
    try:
        check(ka.send("GET", "/status").status == 200, "/status not 200 before SIGTERM")
        sq.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: ka.send("GET", "/status").status == 503, 5, "/status 503 after SIGTERM")
        r = ka.send("GET", "/status")
        check(r.json().get("status") == "stopping", "/status on an open connection after SIGTERM: %r" % r)
    finally:
        ka.close()
    check(port_open(S["port"]), "the listening socket closed at SIGTERM: a load balancer cannot see the drain")
    r = request(S["port"], "GET", "/api/relay/healthcheck/ready/")
    check(r.status == 503 and r.json() == {"is_healthy": False}, "ready on a new connection while draining: %r" % r)
    check(sq.alive(), "sentryq exited before shutdown_timeout with forwards in flight")
    t0 = time.monotonic()
    rc = sq.stop(signal.SIGTERM, timeout=10)
    took = time.monotonic() - t0
    print("# second SIGTERM: exit %r after %.2fs" % (rc, took))
    check(rc == 0 and took < 2, "second SIGTERM: exit %r after %.1fs, want 0 at once" % (rc, took))
    check(not port_open(S["port"]), "port still open after exit")
    mock.reset()
    start()
    got = wait_all_delivered(sent, 60)
    check_intact(sent, got, "SIGTERM then a second SIGTERM")


if __name__ == "__main__":
    main(globals())
