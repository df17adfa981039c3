#!/usr/bin/python3
"""test_outage_one_project.py - one project's entries keep getting 503 while another project of the
same upstream is healthy, at the shipped defaults. A failed entry waits forward.retry_initial (1 s)
before it is sent again, whatever the upstream's state: the healthy project's 2xx answers end each
interruption at once, and without the per-entry wait the failing entries were resent on every one
of them (2.7-3.5 sends a second each), taking the upstream's slots from the healthy project (484 of
its 2000 events delivered in 10 s, the last after 57 s)."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, Loader, summary  # noqa: E402
from sqtest.proc import check  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World  # noqa: E402

FAILING = 5
HEALTHY = 2000
RATE = 200          # healthy events per second, for HEALTHY / RATE = 10 s
GOAL_S = 3.0        # the last healthy event delivered at most this long after the last was sent


def test_one_projects_503_leaves_the_other_project_flowing():
    w = World()
    try:
        mock = w.mock("up")
        bad, good = Project("up", "failing", 31), Project("up", "healthy", 32)
        w.start([("up", mock.url, [bad, good])])  # the shipped defaults
        mock.program(rules=[{"path_contains": "/api/31/", "responses": [{"status": 503}]}],
                     default={"status": 200})
        led = Ledger()
        Loader(led, w.port, [led.make(bad, "failing", i) for i in range(FAILING)], workers=1).start().join(10)
        check(len(led.acked) == FAILING, "failing project: %d of %d acknowledged" % (len(led.acked), FAILING))
        failing = list(led.acked)
        t0 = time.monotonic()
        Loader(led, w.port, [led.make(good, "healthy", i) for i in range(HEALTHY)], workers=4,
               rate=RATE).start().join(HEALTHY / RATE + 20)
        t_sent = time.monotonic()
        healthy = [e for e in led.acked if e not in failing]
        check(len(healthy) == HEALTHY, "healthy project: %d of %d acknowledged: %s" % (
            len(healthy), HEALTHY, led.statuses()))
        d = w.wait_delivered(led, healthy, 60)
        took = d.last_delivered_at(healthy) - t_sent
        window = time.monotonic() - t0
        # Every send of a failing entry reached the mock (503): at most one per retry_initial each,
        # plus the first, plus one for the jitter of the tick.
        sends = [len(d.attempts.get(e, [])) for e in failing]
        bound = int(window / w.settings["retry_initial"]) + 2
        summary("outage one-project-503 healthy-neighbour", led, d, w.counters(),
                "healthy_last_%.2fs_after_sent (goal <= %.0fs) failing_sends=%s over %.1fs (bound %d each)" % (
                    took, GOAL_S, sends, window, bound))
        check(max(sends) <= bound, "a failing entry was sent %d times in %.1f s: more often than once per "
              "forward.retry_initial (%.1f s)" % (max(sends), window, w.settings["retry_initial"]))
        check(min(sends) >= 2, "a failing entry was not retried at all: %s" % sends)
        check(took <= GOAL_S, "the healthy project's last event was delivered %.2f s after the last was sent "
              "(goal <= %.0f s): the failing project held up its neighbour" % (took, GOAL_S))
        hs = set(healthy)
        check(not [e for e in d.corrupt if e in hs], "healthy events arrived with other bytes: %s" % d.corrupt[:3])
        check(not [e for e in d.ok if e in set(failing)], "a failing project's event was delivered (its mock "
              "answers 503 only)")
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
