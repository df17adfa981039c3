#!/usr/bin/python3
"""test_connect_timeout.py - an upstream whose host drops SYNs (a listening socket whose accept
queue is full and never drained): each attempt gives up after the upstream's connect_timeout
(0.5 s), not after its 5 s request timeout, so the event is retried several times in 3 s; once a
real upstream listens there, it is delivered."""

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
        w.start([("up", "http://127.0.0.1:%d" % port, [prj])], fwd_timeout=5.0, connect_timeout=0.5,
                retry_initial=0.2, retry_max=0.4)
        led = Ledger()
        eid, r = led.send(w.port, prj, "conn", 0)
        check(r is not None and r.status == 200, "answered %r" % r)
        t0 = time.time()
        wait_for(lambda: w.counters().get("upstream_failed", 0) >= 3, 4.5,
                 "3 failed attempts within 4.5 s (each bounded by connect_timeout 0.5 s, not timeout 5 s)",
                 interval=0.1)
        took = time.time() - t0
        for c in fill:
            c.close()
        hole.close()
        mock = w.mock("up", port=port)
        d = w.wait_delivered(led, led.acked, 15)
        summary("connect-timeout", led, d, w.counters(), "three_failures_in=%.1fs" % took)
        check_delivery(led, d, allow_unacked=False)
        check(len(mock.requests()) >= 1, "nothing reached the upstream once it listened")
    finally:
        for c in fill:
            c.close()
        hole.close()
        w.close()


if __name__ == "__main__":
    main(globals())
