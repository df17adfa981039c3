#!/usr/bin/python3
"""test_failover.py WAIT_REPLICAS - the master is SIGKILLed under load (a paced Loader, 8 SDK
connections); the sentinels (3, quorum 2, down-after 1 s) promote one of the two replicas and
sentryq follows: /status redis is connected to the promoted one (the one the sentinels name at
the end, when they failed over more than once). Every answer is 200 or 503.

With wait_replicas 1 every acknowledged (200) event reaches the upstream intact: the WAIT after
each batch means a replica had it before the SDK was answered, and the sentinels promote the most
advanced replica. With 0 the events acknowledged but never delivered are the cost of asynchronous
replication: measured and printed on the SUMMARY line (lost=N), not asserted."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.failover import FailoverRun  # noqa: E402
from sqtest.ledger import summary  # noqa: E402
from sqtest.proc import check  # noqa: E402
from sqtest.redis_ha import MASTER_NAME, HAWorld  # noqa: E402
from sqtest.runner import main  # noqa: E402

WAIT = int(sys.argv[1]) if len(sys.argv) > 1 else 1


def test_master_killed_under_load():
    w = HAWorld(wait_replicas=WAIT)
    try:
        w.start()
        first = w.ha.current_master()
        check(w.redis_status().get("address") == "127.0.0.1:%d" % first.port,
              "sentryq is not on the master the sentinels name: %r" % w.redis_status())
        old = []

        def kill():
            victim, t = w.ha.kill_master()
            old.append(victim)
            return t
        run = FailoverRun(w, [w.prj], "ha%d" % WAIT).run(kill, lambda: w.ha.wait_promoted(old[0], 30),
                                                        lambda new: w.wait_following(new, 30))
        switches = w.sq.log_text().count("as master '%s' (was " % MASTER_NAME)
        summary("ha failover wait_replicas=%d" % WAIT, run.led, run.d, w.sq.status()[1]["counters"],
                run.figures() + " master_switches=%d" % switches)
        check(w.redis_status()["address"] == "127.0.0.1:%d" % run.new.port,
              "sentryq is not on the master the sentinels name (port %d): %r" % (run.new.port, w.redis_status()))
        check(switches >= 1, "sentryq never logged following a new master")
        run.check(WAIT)
    finally:
        w.close()


if __name__ == "__main__":
    del sys.argv[1:]
    main(globals())
