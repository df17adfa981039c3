#!/usr/bin/python3
"""test_conn_flood.py - idle connections past the connection cap.

Asserted: past listen.max_connections a new connection gets a 503 JSON answer (or is closed)
promptly, instead of waiting unanswered; /status keeps answering within 50 ms on a connection
opened before the flood; once the flood closes a valid request gets 200 and is delivered. With
the default cap (derived from the fd limit) and `ulimit -n` 256, the log states the derived cap,
300 connections neither take sentryq down nor make accept() fail."""

import os
import re
import select
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.attack import (Poller, Stack, check_status_bound, close_all, connect, expect_json_detail,  # noqa: E402
                           figure, nofile, open_many, parse_answers, read_until_close, skip_legacy,
                           status_summary, valid_request_delivered)
from sqtest.http import KeepAlive  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import AUTH_VOD, shipped_settings  # noqa: E402

S = {}
CAP = 50          # listen.max_connections for the flood: keeps the flood small (the default derives
FLOOD = 200       # from the fd limit: test_default_cap_from_fd_limit covers that)
VALID = (b"POST /api/20/store/ HTTP/1.1\r\nHost: relay\r\nX-Sentry-Auth: " + AUTH_VOD.encode() +
         b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")


def setup_module():
    S["stack"] = Stack()


def teardown_module():
    S["stack"].stop()


def listen_of(ka):
    return ka.send("GET", "/status").json().get("listen", {})


def classify(socks, timeout):
    """Read what each socket gets until all are answered or closed, or timeout passes: returns
    ({index: bytes}, set of closed indexes)."""
    data, closed = {}, set()
    deadline = time.monotonic() + timeout
    while len(closed) < len(socks) and time.monotonic() < deadline:
        live = [s for i, s in enumerate(socks) if i not in closed]
        ready = select.select(live, [], [], max(0.0, min(0.2, deadline - time.monotonic())))[0]
        for s in ready:
            i = socks.index(s)
            try:
                b = s.recv(65536)
            except (ConnectionResetError, OSError):
                b = b""
            if b:
                data[i] = data.get(i, b"") + b
            else:
                closed.add(i)
    return data, closed


def test_flood_past_the_cap():
    if skip_legacy("no listen.max_connections before the hardening"):
        return
    stack = S["stack"].start(listen_max_connections=CAP)
    check("(at most %d connections)" % CAP in stack.log(), "the log does not state the cap %d" % CAP)
    ka = KeepAlive(stack.port)              # opened (by its first request) before the flood: counts
    listen_of(ka)                           # against the cap
    poll = Poller(stack.port)               # likewise
    socks = open_many(stack.port, FLOOD)
    try:
        wait_for(lambda: listen_of(ka).get("open_connections", 0) >= CAP - 1, 10, "the cap filled")
        data, closed = classify(socks, 5.0)
        answered = {i: parse_answers(b) for i, b in data.items()}
        refused = [i for i in answered if answered[i] and answered[i][0].status == 503]
        idle_open = [i for i in range(FLOOD) if i not in closed and i not in data]
        # A connection past the cap during the flood: answered or closed, and promptly.
        s = connect(stack.port)
        s.sendall(VALID)
        late, late_closed, late_secs = read_until_close(s, 3.0)
        s.close()
        lst = listen_of(ka)
        res = poll.stop()
    finally:
        close_all(socks)
    figure("conn_flood", "cap %d, %d idle connections: %d answered 503, %d closed without an answer, %d left "
           "open (within the cap); a new connection during the flood: %r after %.2f s (closed %s); "
           "listen counters %r; %s" % (CAP, FLOOD, len(refused), len(closed) - len(refused), len(idle_open),
                                       late[:12], late_secs, late_closed, lst, status_summary(res)))
    check(len(idle_open) <= CAP, "%d flood connections held open, cap %d" % (len(idle_open), CAP))
    check(len(refused) + len(closed - set(refused)) >= FLOOD - CAP,
          "only %d of the %d connections past the cap were answered or closed (the rest wait unanswered)" % (
              len(set(refused) | closed), FLOOD - CAP))
    for i in refused[:5]:
        a = expect_json_detail(answered[i][0], 503, "connection %d past the cap" % i)
    check(late_closed or late, "a connection past the cap waited %.1f s unanswered" % late_secs)
    if late:
        a = parse_answers(late)[0]
        expect_json_detail(a, 503, "a request past the cap")
        check(a.header("Retry-After"), "503 past the cap without Retry-After: %r" % a.headers)
    check(lst.get("refused_connections", 0) >= FLOOD - CAP, "listen.refused_connections %r" % lst)
    check_status_bound("conn_flood", res)
    wait_for(lambda: listen_of(ka).get("open_connections", 99) <= 2, 10, "the flood's connections to close")
    ka.close()
    valid_request_delivered(stack, "conn_flood")


def test_default_cap_from_fd_limit():
    """The default cap (listen.max_connections = 0) derives from the fd limit: with 256 fds it
    leaves 64 + the upstream's forward.max_connections (shipped 64), 128 for clients."""
    stack = S["stack"].start(preexec_fn=nofile(256))
    log = stack.log()
    m = re.search(r"\(at most (\d+) connections\)", log)
    ka = KeepAlive(stack.port)
    listen_of(ka)                           # connects now, before the flood
    poll = Poller(stack.port)
    socks = []
    try:
        for _ in range(300):
            socks.append(connect(stack.port))
        data, closed = classify(socks, 3.0)
        check(stack.sq.alive(), "sentryq died under 300 connections with 256 fds")
        lst = listen_of(ka)
        res = poll.stop()
    finally:
        close_all(socks)
    figure("conn_flood_default_cap", "ulimit -n 256: derived cap %s; 300 connections: %d answered, %d closed, "
           "sentryq alive %s, listen %r; %s" % (m.group(1) if m else "(not logged)", len(data), len(closed),
                                                stack.sq.alive(), lst, status_summary(res)))
    want = 256 - 64 - shipped_settings()["max_connections"]
    check(m and int(m.group(1)) == want, "the log states no derived cap of %d: %r" % (want, m.group(0) if m else None))
    check(lst.get("accept_errors") == 0, "accept() failed with the derived cap: %r" % lst)
    check_status_bound("conn_flood_default_cap", res)
    wait_for(lambda: listen_of(ka).get("open_connections", 999) <= 2, 10, "the flood's connections to close")
    ka.close()
    valid_request_delivered(stack, "conn_flood_default_cap")


main(globals())
