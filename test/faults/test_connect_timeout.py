#!/usr/bin/python3
"""test_connect_timeout.py - an upstream whose host drops SYNs (a listening socket whose accept
queue is full and never drained), at the shipped defaults: each attempt gives up after
forward.connect_timeout (3 s), not after forward.timeout (10 s), and is retried after about
forward.retry_initial (1 s), so three attempts fail within about 3 x (3 + 1) s where the request
timeout would take over 30 s; once a real upstream listens there, the event is delivered."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import TestFailure, check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World  # noqa: E402


def blackhole():
    """A loopback port that accepts no new connection: SYNs beyond the full queue are dropped."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    fill = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(s.getsockname())
        except BlockingIOError:
            pass
        fill.append(c)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(s.getsockname())
        raise TestFailure("the blackhole accepted a connection; the kernel does not drop SYNs here")
    except (TimeoutError, socket.timeout):
        pass
    finally:
        probe.close()
    return s, fill


def test_connect_timeout_bounds_each_attempt():
    w = World()
    hole, fill = blackhole()
    try:
        prj = Project("up", "slowconn", 91)
        port = hole.getsockname()[1]
        w.start([("up", "http://127.0.0.1:%d" % port, [prj])])  # the shipped defaults
        s = w.settings
        check(s["connect_timeout"] < s["fwd_timeout"], "shipped connect_timeout must be shorter than timeout")
        led = Ledger()
        eid, r = led.send(w.port, prj, "conn", 0)
        check(r is not None and r.status == 200, "answered %r" % r)
        t0 = time.monotonic()
        # Three attempts: connect_timeout each, retry_initial (+10 % jitter) between them, + slack.
        limit = 3 * s["connect_timeout"] + 2 * 1.1 * s["retry_initial"] + 2.5
        check(limit < 3 * s["fwd_timeout"], "the bound would not tell connect_timeout from timeout")
        fails = []

        def failed_three():
            n = w.counters().get("upstream_failed", 0)
            if n > len(fails):
                fails.extend([time.monotonic()] * (n - len(fails)))
            return n >= 3
        wait_for(failed_three, limit, "3 failed attempts within %.1f s (each bounded by connect_timeout %.0f s, "
                 "not timeout %.0f s)" % (limit, s["connect_timeout"], s["fwd_timeout"]), interval=0.05,
                 max_interval=0.05)
        took = time.monotonic() - t0
        first = fails[0] - t0
        check(s["connect_timeout"] - 0.3 <= first <= s["connect_timeout"] + 0.5,
              "the first attempt failed %.2f s after the event was queued, want connect_timeout = %.0f s" % (
                  first, s["connect_timeout"]))
        for c in fill:
            c.close()
        hole.close()
        mock = w.mock("up", port=port)
        d = w.wait_delivered(led, led.acked, 15)
        summary("connect-timeout", led, d, w.counters(), "first_failure_after=%.2fs three_failures_in=%.1fs" % (
            first, took))
        check_delivery(led, d, allow_unacked=False)
        check(len(mock.requests()) >= 1, "nothing reached the upstream once it listened")
    finally:
        for c in fill:
            c.close()
        hole.close()
        w.close()


if __name__ == "__main__":
    main(globals())
