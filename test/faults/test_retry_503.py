#!/usr/bin/python3
"""test_retry_503.py - fault case 1: the upstream answers 503 for ~3 s, then 200. Every acknowledged
event is delivered intact, the retries are counted, the upstream is marked down without a hot loop,
and the queue drains to 0."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World, upstream_state  # noqa: E402
N = 60


def test_503_for_3s_then_200():
    w = World()
    try:
        mock = w.mock("up")
        mock.program(default={"status": 503})
        prj = Project("up", "app", 21)
        w.start([("up", mock.url, [prj])])
        c0 = w.counters()
        led = Ledger()
        Loader(led, w.port, [led.make(prj, "c1", i) for i in range(N)], workers=4).start().join(30)
        check(len(led.acked) == N, "sentryq acknowledged %d of %d events while Redis is up: %s" % (
            len(led.acked), N, led.statuses()))
        wait_for(lambda: mock.count() >= 3, 10, "3 forward attempts against the 503 upstream")
        wait_for(lambda: upstream_state(w, "up")["down"], 10,
                 "upstream marked down after down_after=3 failures", interval=0.1)
        t_fail = time.monotonic()
        time.sleep(3.0)  # the scenario: the upstream keeps failing for 3 s
        fails = mock.count()
        st = w.status()
        check(st["queue"]["pending"] > 0, "queue.pending is 0 while the upstream answers 503: %r" % st["queue"])
        check(st["forward"]["in_flight"] <= 1 + 16, "in_flight %r" % st["forward"]["in_flight"])
        # A down upstream gets one probe per backoff expiry: a hot loop would give thousands here.
        check(fails < 4 * N, "%d attempts in %.1fs against a down upstream: no backoff?" % (
            fails, time.monotonic() - t_fail))
        mock.program(default={"status": 200})
        d = w.wait_delivered(led, led.acked, 30)
        check_delivery(led, d, allow_unacked=False)
        w.wait_pending_zero()
        c = w.counters()
        retried, fwd = c["retried"] - c0.get("retried", 0), c["forwarded"] - c0.get("forwarded", 0)
        summary("case1 503-then-200", led, d, c, "attempts_during_outage=%d" % fails)
        w.check_gauges()
        check(retried > 0, "counters.retried moved by %d after %d 503 answers" % (retried, fails))
        check(fwd >= N, "counters.forwarded moved by %d, want >= %d" % (fwd, N))
        wait_for(lambda: not upstream_state(w, "up")["down"], 10, "upstream no longer down")
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
