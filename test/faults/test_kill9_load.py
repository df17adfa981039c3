#!/usr/bin/python3
"""test_kill9_load.py - fault case 6: sentryq is SIGKILLed under load (8 concurrent SDK connections,
3000 unique events, kill after ~1000 acknowledged), restarted on the same Redis, and the rest is
posted. Every event that got a 200 reaches the upstream intact. Requests in flight at the kill may
have failed (not acknowledged: no promise), or been written but not answered (then they may arrive:
reported as unacked_delivered, allowed). Duplicates are at-least-once redeliveries: counted only."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World  # noqa: E402
TOTAL = 3000
KILL_AT = 1000


def test_kill9_under_load():
    w = World()
    try:
        mock = w.mock("up")
        p1, p2 = Project("up", "one", 71), Project("up", "two", 72)
        # The in-memory buffer is on: an SDK must still be answered only after Redis has the entry.
        w.start([("up", mock.url, [p1, p2])], buffer_bytes=67108864)
        led = Ledger()
        eids = [led.make(p1 if i % 2 else p2, "c6", i) for i in range(TOTAL)]
        load = Loader(led, w.port, eids, workers=8).start()
        wait_for(lambda: load.acked() >= KILL_AT or load.done(), 60, "%d events acknowledged" % KILL_AT,
                 interval=0.05)
        load.stop()
        w.kill9()  # requests still in flight die with the process
        load.join(30)
        phase1 = list(load.attempted)
        acked1 = load.acked()
        errors1 = sum(1 for e in phase1 if e not in led.acked)
        check(acked1 < TOTAL, "all %d events posted before the kill: nothing was under load" % TOTAL)
        w.restart()
        rest = eids[len(phase1):]
        Loader(led, w.port, rest, workers=8).start().join(120)
        check(len(led.acked) == TOTAL - errors1, "acknowledged %d in all, want %d (all but the %d "
              "in flight at the kill): %s" % (len(led.acked), TOTAL - errors1, errors1, led.statuses()))
        d = w.wait_delivered(led, led.acked, 60)
        check_delivery(led, d, allow_unacked=True)
        w.wait_pending_zero(20)
        c = w.counters()
        summary("case6 kill9-under-load", led, d, c,
                "killed_after_acked=%d inflight_failed=%d unacked_delivered=%d (counters: 2nd process)" % (
                      acked1, errors1, len(d.unacked_delivered)))
        w.check_gauges()
        check(len(d.ok) - len(d.unacked_delivered) == len(led.acked),
              "unique acknowledged ids delivered %d != acknowledged %d" % (
                    len(d.ok) - len(d.unacked_delivered), len(led.acked)))
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
