#!/usr/bin/python3
"""test_health.py - Sentry Relay's health checks: live fails only when the loop is stuck; ready is
true exactly when a new request would be accepted (stopping, a full queue, Redis away with the
buffer full, body memory exhausted make it false; Redis away with room in the buffer does not);
/status follows ready; a SIGTERM drain keeps the listener answering (ready 503) until it exits."""

import http.client
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id  # noqa: E402
from sqtest.http import KeepAlive, request  # noqa: E402
from sqtest.mock import Mock  # noqa: E402
from sqtest.proc import check, free_port, port_open, wait_for  # noqa: E402
from sqtest.prom import scrape  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import AUTH_VOD, Sentryq, make_config, standard_upstreams  # noqa: E402

LIVE, READY = "/api/relay/healthcheck/live/", "/api/relay/healthcheck/ready/"
STALE_AFTER = 5.0   # health.h HEALTH_STALE_AFTER

S = {}


def setup_module():
    S["redis"] = Redis().start()
    S["mock"] = Mock().start()


def start(**settings):
    S["mock"].reset()
    S["redis"].command("FLUSHALL")
    port = free_port()
    cfg = make_config(port, S["redis"].port, standard_upstreams(S["mock"].url), **settings)
    return Sentryq().start(cfg, port)


def health(port, path):
    r = request(port, "GET", path)
    check(r.header("Content-Type") == "application/json", "%s Content-Type %r" % (path, r.header("Content-Type")))
    return r.status, r.json()


def healthy(port, path, want):
    st, doc = health(port, path)
    ok = (st, doc) == ((200, {"is_healthy": True}) if want else (503, {"is_healthy": False}))
    check(ok, "%s answered %s %r, want %s" % (path, st, doc, "200 healthy" if want else "503 unhealthy"))


def post_event(port, body=None):
    body = body or ('{"event_id":"%s","message":"health"}' % new_event_id()).encode()
    return request(port, "POST", "/api/1/store/", [("X-Sentry-Auth", AUTH_VOD), ("Content-Type", "application/json")],
                   body)


def status_of(sq):
    st, doc = sq.status()
    return st, doc.get("status"), doc.get("health", {}).get("reason")


def test_live_and_ready_answer_as_relay():
    sq = start()
    try:
        healthy(sq.port, LIVE, True)
        healthy(sq.port, READY, True)
        healthy(sq.port, "/api/0/relays/live/", True)
        r = request(sq.port, "HEAD", READY)
        check(r.status == 200 and r.body == b"", "HEAD ready: %r" % r)
        r = request(sq.port, "POST", READY, body=b"{}")
        check(r.status != 200, "POST on the ready check was served: %r" % r)
        st, doc = sq.status()
        check(doc["health"] == {"live": True, "ready": True, "reason": "ready"}, "/status health %r" % doc["health"])
        # health checks are not traffic
        m = scrape(sq.port)
        check(m.total("sentryq_ingest_requests_total") == 0, "health checks counted as ingest requests")
    finally:
        sq.stop()


def test_live_503_only_when_the_loop_is_stuck():
    """The process is frozen (SIGSTOP) longer than the self-check may go stale, with a live check
    already sent on an open connection: it is answered 503 when the loop runs again (the stall is
    reported, not hidden by the self-check run that ended it); live is 200 again once the
    self-check has run on time."""
    sq = start()
    conn = http.client.HTTPConnection("127.0.0.1", sq.port, timeout=20)
    try:
        conn.request("GET", LIVE)
        r = conn.getresponse()
        check(r.status == 200, "live before the freeze: %s" % r.status)
        r.read()
        sq.proc.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        conn.request("GET", LIVE)  # waits in the socket while the loop is frozen
        time.sleep(max(0.0, frozen + STALE_AFTER + 1.0 - time.monotonic()))  # the stuck loop itself
        sq.proc.send_signal(signal.SIGCONT)
        r = conn.getresponse()
        body = r.read()
        check(r.status == 503 and body == b'{"is_healthy":false}',
              "live after %.1fs frozen: %s %r, want 503" % (time.monotonic() - frozen, r.status, body))
        wait_for(lambda: health(sq.port, LIVE)[0] == 200, 5, "live 200 once the self-check ran on time")
        healthy(sq.port, READY, True)  # not stopping, nothing full: ready throughout
    finally:
        conn.close()
        sq.proc.send_signal(signal.SIGCONT)
        sq.stop()


def test_ready_false_while_the_queue_is_full():
    """queue.max_pending 3 and an upstream that refuses: at 3 queued, ready 503 and ingest 429 agree."""
    S_mock = S["mock"]
    sq = start(max_pending=3)
    try:
        S_mock.program(default={"status": 503})
        for _ in range(3):
            check(post_event(sq.port).status == 200, "event not accepted below the bound")
        wait_for(lambda: health(sq.port, READY)[0] == 503, 10, "ready 503 with queue.max_pending reached")
        r = post_event(sq.port)
        check(r.status == 429, "ingest while not ready answered %r, want 429" % r)
        check(status_of(sq) == (503, "degraded", "queue_full"), "/status %r" % (status_of(sq),))
        S_mock.program(default={"status": 200})
        wait_for(lambda: health(sq.port, READY)[0] == 200, 20, "ready again once the queue drained")
        check(post_event(sq.port).status == 200, "ingest refused once ready again")
    finally:
        sq.stop()


def test_redis_away_ready_while_the_buffer_takes_requests():
    """Redis away with a 256 KiB buffer: ready 200 and /status 200 "degraded" while it takes
    requests; once a small request no longer fits, ready 503 and ingest 503 agree; Redis back,
    ready 200 and "ok"."""
    redis = S["redis"]
    sq = start(buffer_bytes=262144)
    try:
        redis.stop()
        wait_for(lambda: sq.status()[1]["redis"]["connected"] is False, 15, "sentryq sees Redis gone")
        healthy(sq.port, READY, True)
        check(status_of(sq) == (200, "degraded", "ready"), "/status with Redis away, buffer empty: %r" % (status_of(sq),))
        check(post_event(sq.port).status == 200, "the buffer did not take a request")
        big = b'{"message":"%s"}' % (b"x" * 60000)
        while post_event(sq.port, big).status == 200:
            check(sq.status()[1]["queue"]["buffered_bytes"] <= 262144, "buffer over its bound")
        accepted = 0
        while post_event(sq.port).status == 200:  # small ones until even those do not fit
            accepted += 1
            check(accepted < 1000, "small requests never refused")
        healthy(sq.port, READY, False)
        check(status_of(sq) == (503, "degraded", "buffer_full"), "/status with the buffer full: %r" % (status_of(sq),))
        redis.start()
        wait_for(lambda: health(sq.port, READY)[0] == 200, 30, "ready once Redis is back and the buffer drained")
        wait_for(lambda: status_of(sq) == (200, "ok", "ready"), 10, "/status ok once Redis is back")
    finally:
        if not redis.proc or redis.proc.poll() is not None:
            redis.start()
        sq.stop()


def test_redis_away_without_buffer_not_ready():
    redis = S["redis"]
    sq = start(buffer_bytes=0)
    try:
        redis.stop()
        wait_for(lambda: health(sq.port, READY)[0] == 503, 15, "ready 503 with Redis away and no buffer")
        check(post_event(sq.port).status == 503, "ingest accepted with Redis away and no buffer")
        healthy(sq.port, LIVE, True)  # not ready is not dead
        redis.start()
        wait_for(lambda: health(sq.port, READY)[0] == 200, 30, "ready once Redis is back")
    finally:
        if not redis.proc or redis.proc.poll() is not None:
            redis.start()
        sq.stop()


def test_ready_false_while_body_memory_is_exhausted():
    """listen.max_body_memory 1 MiB: one request head announcing 1048000 body bytes reserves
    them; ready is 503 until that connection goes."""
    port = free_port()
    cfg = make_config(port, S["redis"].port, standard_upstreams(S["mock"].url)).replace(
        "listen = { ", "listen = { max_body_memory = 1048576; ", 1)
    sq = Sentryq().start(cfg, port)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        healthy(port, READY, True)
        sock.sendall(b"POST /api/1/store/ HTTP/1.1\r\nHost: x\r\nX-Sentry-Auth: %s\r\n"
                     b"Content-Length: 1048000\r\n\r\n{" % AUTH_VOD.encode())
        wait_for(lambda: health(port, READY)[0] == 503, 10, "ready 503 with the body memory reserved")
        check(status_of(sq) == (503, "degraded", "body_memory"), "/status %r" % (status_of(sq),))
        sock.close()
        wait_for(lambda: health(port, READY)[0] == 200, 10, "ready once the connection is gone")
    finally:
        sock.close()
        sq.stop()


def test_sigterm_drain_answers_not_ready_on_new_connections_then_exits():
    """SIGTERM with a forward in flight (the upstream answers after 4 s): while it drains, NEW
    connections get ready 503, live 200, /status 503 "stopping", /metrics sentryq_ready 0, and
    ingest 503 + Retry-After; then the process exits 0 by itself, drained, well before
    shutdown_timeout (20 s), the entry delivered."""
    mock = S["mock"]
    sq = start(shutdown_timeout=20.0, fwd_timeout=15.0)
    try:
        mock.program(default={"status": 200, "delay": 4})
        check(post_event(sq.port).status == 200, "event not accepted")
        wait_for(lambda: mock.count() >= 1, 10, "the forward in flight")
        t0 = time.monotonic()
        sq.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: health(sq.port, READY)[0] == 503, 3, "ready 503 on a new connection after SIGTERM")
        check(time.monotonic() - t0 < 3.5, "the drain was over before it could be seen")
        healthy(sq.port, READY, False)
        healthy(sq.port, LIVE, True)
        st, doc = sq.status()
        check(st == 503 and doc["status"] == "stopping" and doc["health"]["reason"] == "stopping",
              "/status while draining: %s %r" % (st, doc.get("status")))
        check(scrape(sq.port).value("sentryq_ready") == 0, "sentryq_ready not 0 while draining")
        r = post_event(sq.port)
        check(r.status == 503 and (r.header("Retry-After") or "").isdigit(), "ingest while draining: %r" % r)
        rc = sq.proc.wait(timeout=25)
        took = time.monotonic() - t0
        print("# drained and exited %.2fs after SIGTERM" % took)
        check(rc == 0, "exit code %r after the drain" % rc)
        check(took < 15, "exit took %.1fs: not when drained (shutdown_timeout 20 s)" % took)
        check("shutdown: drained, exiting" in sq.log_text(), "the log does not say it drained")
        check(not port_open(sq.port), "port still open after exit")
        check([r["status"] for r in mock.requests()] == [200], "the entry in flight was not delivered: %r" %
              [r["status"] for r in mock.requests()])
    finally:
        if sq.alive():
            sq.stop()


if __name__ == "__main__":
    main(globals())
