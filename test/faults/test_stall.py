#!/usr/bin/python3
"""test_stall.py - fault case 5: upstream A stalls (accepts, never answers) while upstream B stays
healthy. With forward.timeout = 1 s, B's events are all delivered within a few seconds despite A;
then A recovers and its events are delivered too, intact."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World, upstream_state  # noqa: E402
N = 30


def test_stalling_upstream_does_not_block_another():
    w = World()
    try:
        ma, mb = w.mock("A"), w.mock("B")
        pa, pb = Project("upa", "appa", 61), Project("upb", "appb", 62)
        ma.program(rules=[{"path_contains": pa.api, "responses": [{"stall": 30}]}])
        w.start([("upa", ma.url, [pa]), ("upb", mb.url, [pb])])
        led = Ledger()
        eids = [led.make(pa, "A", i) for i in range(N)]
        # A first, so its entries occupy the forwarder before B's arrive.
        Loader(led, w.port, eids, workers=4).start().join(30)
        wait_for(lambda: ma.count() >= 1, 5, "a forward to stalling upstream A")
        t0 = time.monotonic()
        Loader(led, w.port, [led.make(pb, "B", i) for i in range(N)], workers=4).start().join(30)
        check(len(led.acked) == 2 * N, "acknowledged %d of %d: %s" % (len(led.acked), 2 * N, led.statuses()))
        d = w.wait_delivered(led, led.of(pb), 5, names=["B"])
        took_b = time.monotonic() - t0
        check(not [e for e in led.of(pa) if e in w.delivery(led, ["A"]).ok], "A delivered while stalling?")
        st = upstream_state(w, "upa")
        print("# upstream A state while stalling: %r" % st)
        # The stalled forwards time out after 1 s; after down_after = 3 failures A is down, and a down
        # upstream gets at most one request in flight (the probe). Watch that for 2 s (the scenario).
        wait_for(lambda: upstream_state(w, "upa")["down"], 5, "stalling upstream A marked down",
                 interval=0.05)
        seen, t_end = [], time.monotonic() + 2.0
        while time.monotonic() < t_end:
            u = upstream_state(w, "upa")
            if u["down"]:
                seen.append(u["in_flight"])
            time.sleep(0.05)  # sampling interval
        check(seen and max(seen) <= 1, "down upstream A had up to %s requests in flight (want <= 1, "
              "the probe); samples %s" % (max(seen) if seen else None, sorted(set(seen))))
        ma.program(rules=[])  # A recovers
        t1 = time.monotonic()
        d = w.wait_delivered(led, led.acked, 30)
        took_a = time.monotonic() - t1
        check_delivery(led, d, allow_unacked=False)
        w.wait_pending_zero()
        stalls = sum(1 for r in ma.requests() if r["status"] == "stall")
        c = w.counters()
        summary("case5 stall-A-healthy-B", led, d, c, "B_delivered_in=%.1fs A_stalled_attempts=%d "
                "A_delivered_%.1fs_after_recovery" % (took_b, stalls, took_a))
        w.check_gauges()
        check(stalls >= 1 and c.get("retried", 0) + c.get("upstream_failed", 0) > 0,
              "stalled attempts %d but counters %r" % (stalls, c))
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
