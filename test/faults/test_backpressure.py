#!/usr/bin/python3
"""test_backpressure.py - fault case 8: the upstream answers 503 so entries pile up past
queue.max_pending = 50: further SDK requests get 429 with Retry-After and counters.backpressure
moves. The upstream recovers and, without restarting sentryq, new requests get 200 again within a
few seconds; everything acknowledged is delivered intact and nothing refused is forwarded."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World  # noqa: E402
MAX_PENDING = 50


def test_backpressure_429_then_recovers():
    w = World()
    try:
        mock = w.mock("up")
        mock.program(default={"status": 503})
        prj = Project("up", "app", 91)
        w.start([("up", mock.url, [prj])], max_pending=MAX_PENDING)
        led = Ledger()
        r = None
        t0 = time.monotonic()
        # Bounded fill: pending is refreshed from Redis every second, so a few more than 50 may get in.
        while time.monotonic() - t0 < 15 and len(led.answer) < 2000:
            r = led.send(w.port, prj, "c8", len(led.answer))[1]
            if r.status == 429:
                break
            check(r.status == 200, "answer %r before the queue was full" % r)
        check(r is not None and r.status == 429, "no 429 after %d accepted requests (max_pending %d, "
              "counters %r)" % (len(led.acked), MAX_PENDING, w.counters()))
        n_before = len(led.acked)
        ra = r.header("Retry-After")
        check(ra is not None and ra.strip().isdigit() and int(ra) >= 1,
              "backpressure 429 Retry-After %r, want a positive integer" % ra)
        check("detail" in (r.json() if r.body else {}), "backpressure 429 body %r lacks detail" % r.body)
        check(n_before >= MAX_PENDING, "429 after only %d accepted entries (max_pending %d)" % (
            n_before, MAX_PENDING))
        again = [led.send(w.port, prj, "c8more", i)[1] for i in range(5)]
        check(all(x is not None and x.status == 429 for x in again),
              "requests right after the first 429 answered %r" % again)
        c = w.counters()
        check(c.get("backpressure", 0) >= 6, "counters.backpressure %r after 6 refusals" % c.get("backpressure"))
        st = w.status()
        check(st["queue"]["pending"] >= MAX_PENDING, "queue.pending %r" % st["queue"]["pending"])
        mock.program(default={"status": 200})  # the upstream recovers; sentryq keeps running
        t0 = time.monotonic()
        wait_for(lambda: led.send(w.port, prj, "c8after", len(led.answer))[1].status == 200, 10,
                 "a 200 for a new request after the upstream recovered", interval=0.2)
        took = time.monotonic() - t0
        for i in range(10):
            led.send(w.port, prj, "c8tail", i)
        d = w.wait_delivered(led, led.acked, 30)
        check_delivery(led, d, allow_unacked=False)
        w.wait_pending_zero()
        c = w.counters()
        summary("case8 backpressure", led, d, c, "accepted_before_429=%d backpressure=%s "
                "first_200_after_recovery=%.1fs" % (n_before, c.get("backpressure"), took))
        w.check_gauges()
        check(led.answer[list(led.answer)[-1]] == 200, "last tail request answered %r" % led.answer[list(led.answer)[-1]])
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
