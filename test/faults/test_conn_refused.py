#!/usr/bin/python3
"""test_conn_refused.py - fault case 4: the upstream URL points at a port where nothing listens
(connections refused) for longer than retry_max; /status shows the upstream down; then the mock
starts on that very port and every acknowledged event is delivered intact."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, free_port, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World, upstream_state  # noqa: E402
N = 40


def test_refused_then_listening():
    w = World()
    try:
        port = free_port()
        mock = w.mock("up", port=port, start=False)
        prj = Project("up", "app", 51)
        w.start([("up", "http://127.0.0.1:%d" % port, [prj])], retry_max=1.0)
        c0 = w.counters()
        led = Ledger()
        Loader(led, w.port, [led.make(prj, "c4", i) for i in range(N)], workers=4).start().join(30)
        check(len(led.acked) == N, "acknowledged %d of %d with Redis up: %s" % (
            len(led.acked), N, led.statuses()))
        st = wait_for(lambda: (lambda u: u if u["down"] else None)(upstream_state(w, "up")), 10,
                      "/status forward.upstreams.up.down == true while connections are refused",
                      interval=0.1)
        print("# upstream state while refused: %r" % st)
        check(w.status()["queue"]["pending"] > 0, "queue.pending 0 while the upstream refuses")
        time.sleep(3.0)  # the scenario: nothing listens for 3 s (> retry_max = 1 s)
        check(upstream_state(w, "up")["down"], "upstream no longer down although nothing listens")
        c1 = w.counters()
        mock.start()
        t_up = time.monotonic()
        d = w.wait_delivered(led, led.acked, 20)
        took = time.monotonic() - t_up
        check_delivery(led, d, allow_unacked=False)
        w.wait_pending_zero()
        wait_for(lambda: not upstream_state(w, "up")["down"], 5, "upstream up again")
        c = w.counters()
        summary("case4 conn-refused", led, d, c, "upstream_failed=%s delivered_%.1fs_after_listen" % (
            c.get("upstream_failed"), took))
        w.check_gauges()
        check(c1.get("retried", 0) - c0.get("retried", 0) > 0 or
              c1.get("upstream_failed", 0) - c0.get("upstream_failed", 0) > 0,
              "neither counters.retried nor counters.upstream_failed moved while refused: %r" % c1)
        # retry_max = 1 s: once the upstream listens, the next probe is at most ~1 s away.
        check(took < 10, "delivery took %.1fs after the upstream started listening" % took)
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
