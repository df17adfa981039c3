#!/usr/bin/python3
"""test_failover.py WAIT_REPLICAS - one master of three is SIGKILLed under load (a paced Loader, 8
SDK connections, routes on every master; that master has a second replica, so the promoted one
keeps one); a replica takes over (cluster-node-timeout 1 s) and
sentryq follows: the slot map it keeps names the promoted replica, and every answer is 200 or
503. The routes of the other masters go on being written meanwhile (the buffer takes the
writes of the dead master's slots until the map moves).

With wait_replicas 1 every acknowledged event reaches the upstream intact: the WAIT that
answers a put goes to the master that took its XADD, so a replica had it before the SDK was
answered. With 0 the events acknowledged but never delivered are the cost of asynchronous
replication: measured and printed on the SUMMARY line (lost=N), not asserted."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.failover import FailoverRun  # noqa: E402
from sqtest.ledger import summary  # noqa: E402
from sqtest.proc import check  # noqa: E402
from sqtest.redis_cluster import ClusterWorld, route_slot  # noqa: E402
from sqtest.runner import main  # noqa: E402

WAIT = int(sys.argv[1]) if len(sys.argv) > 1 else 1


def test_master_killed_under_load():
    w = ClusterWorld(wait_replicas=WAIT)
    try:
        w.start()
        w.wait_following(w.cluster.masters())
        victim_prj = w.prjs[0]
        victim = w.cluster.master_of_slot(route_slot("up", victim_prj.name))
        # A second replica for the master to be killed: the promoted one keeps a replica, so
        # wait_replicas 1 can still be met for its slots after the failover (as in the ha suite).
        w.cluster.add_replica(victim)
        run = FailoverRun(w, w.prjs, "cl%d" % WAIT).run(
            lambda: w.cluster.kill_master(victim), lambda: w.cluster.wait_failed_over(victim, 30),
            lambda masters: w.wait_following(masters, 30))
        c = w.counters()
        summary("cluster failover wait_replicas=%d" % WAIT, run.led, run.d, w.sq.status()[1]["counters"],
                "%s masters_lost=%s refreshes=%s moved=%s buffered=%s" % (
                    run.figures(), c.get("masters_lost"), c.get("refreshes"), c.get("moved"),
                    w.sq.status()[1]["counters"].get("buffered")))
        check(c.get("masters_lost", 0) >= 1, "sentryq did not count the master it lost: %s" % c)
        run.check(WAIT)
    finally:
        w.close()


if __name__ == "__main__":
    del sys.argv[1:]
    main(globals())
