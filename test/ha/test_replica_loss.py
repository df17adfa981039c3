#!/usr/bin/python3
"""test_replica_loss.py - wait_replicas 1 with two replicas: one replica is SIGKILLed under load
and ingest keeps answering 200 (the other one confirms every WAIT); every event arrives. Then the
second replica is killed too: WAIT now finds no replica within wait_timeout, so the SDKs get 503 +
Retry-After, never 200 (a 200 here would be an acknowledgement no replica backs). Those entries
stay queued in the master: they may still be delivered (a duplicate for an SDK that retries)."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Delivery, Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.redis_ha import HAWorld  # noqa: E402
from sqtest.runner import main  # noqa: E402

RATE = 300
TOTAL = 2100      # ~7 s of load


def test_replica_lost_then_both():
    w = HAWorld(wait_replicas=1)
    try:
        w.start()
        master = w.ha.current_master()
        led = Ledger()
        eids = [led.make(w.prj, "hr", i) for i in range(TOTAL)]
        load = Loader(led, w.port, eids, workers=8, rate=RATE).start()
        wait_for(lambda: load.acked() >= 300, 30, "300 events acknowledged", interval=0.05)
        w.ha.replicas[0].kill()
        t_kill = time.monotonic()
        load.join(60)
        w.ha.wait_replicas(master, 1, 5)
        w.wait_drained(30)
        d = Delivery(led, w.mock.requests())
        after = [e for e in led.answer if led.t_answer[e] > t_kill]
        summary("ha replica-loss wait_replicas=1", led, d, w.sq.status()[1]["counters"],
                "answered_after_kill=%d" % len(after))
        check(led.statuses() == {"200": TOTAL}, "with one of two replicas left, answers were %s" % led.statuses())
        check(len(after) > 500, "only %d answers after the replica was killed" % len(after))
        check_delivery(led, d, allow_unacked=False)

        # No replica at all: WAIT 1 cannot be met, so nothing may be acknowledged.
        w.ha.replicas[1].kill()
        w.ha.wait_replicas(master, 0, 5)
        led2 = Ledger()
        eids2 = [led2.make(w.prj, "hn", i) for i in range(40)]
        t0 = time.monotonic()
        Loader(led2, w.port, eids2, workers=8).start().join(60)
        took = time.monotonic() - t0
        summary("ha no-replica wait_replicas=1", led2, Delivery(led2, w.mock.requests()),
                w.sq.status()[1]["counters"], "took=%.1fs" % took)
        check(led2.statuses() == {"503": 40}, "with no replica, answers were %s (want 503 only)" % led2.statuses())
        r = led2.responses[eids2[0]]
        check(r.header("Retry-After"), "a 503 without Retry-After: %r" % (r.headers,))
        check(took >= 1.0, "40 answers in %.2fs: WAIT did not wait for wait_timeout" % took)
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
