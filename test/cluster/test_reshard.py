#!/usr/bin/python3
"""test_reshard.py - slots move between masters under load (`redis-cli --cluster reshard`, MIGRATE
key by key): the routes are chosen so that some of them sit in the first slots of a master, which
redis-cli moves first. While a slot migrates, a key already moved is answered -ASK (sentryq sends
ASKING and the command to the importing master), a script whose keys are split -TRYAGAIN; once the
slot is moved, -MOVED (sentryq updates the slot and refreshes the map). One more slot is moved by
hand and held half-way (importing and migrating, its keys moved already) so that -ASK is followed
for certain. Every acknowledged event is delivered, and /status counts the redirections followed."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Delivery, Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.redis_cluster import ClusterWorld, route_slot  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project  # noqa: E402

RATE = 300        # events per second, paced
TOTAL = 3000
MOVE = 400        # slots moved per reshard
MOVE_AFTER = 300  # acknowledged before the first reshard


def early_projects(cluster, src, n=4, tries=20000):
    """Project names whose route slot is among the first MOVE slots of master src."""
    first = min(s for s, _, p in cluster.slots() if p == src)
    names = [("r%d" % i) for i in range(tries) if first <= route_slot("up", "r%d" % i) < first + MOVE]
    check(len(names) >= n, "too few routes in the first %d slots of %d" % (MOVE, src))
    return names[:n]


def test_reshard_under_load():
    w = ClusterWorld(projects=["placeholder"])  # the routes are chosen once the slot map is known
    try:
        # In the order of their slots: a's lowest slots are below b's, b's below c's.
        a, b, c = sorted(w.cluster.masters(), key=lambda p: min(s for s, _, m in w.cluster.slots() if m == p))
        names = early_projects(w.cluster, a, 3) + early_projects(w.cluster, c, 2) + ["steady"]
        w.prjs = [Project("up", n, 200 + i) for i, n in enumerate(names)]
        w.start()
        w.wait_following([a, b, c])
        led = Ledger()
        eids = [led.make(w.prjs[i % len(w.prjs)], "reshard", i) for i in range(TOTAL)]
        load = Loader(led, w.port, eids, workers=8, rate=RATE).start()
        wait_for(lambda: load.acked() >= MOVE_AFTER, 30, "%d events acknowledged" % MOVE_AFTER, interval=0.05)
        for src, dst in ((a, b), (b, c)):
            p = w.cluster.reshard(src, dst, MOVE)
            out, _ = p.communicate(timeout=120)
            check(p.returncode == 0, "reshard %d -> %d failed: %s" % (src, dst, out.decode(errors="replace")[-1500:]))
        # One slot by hand, held half-way under load: every key of route "steady" is on the
        # importing master already, so each command for it is answered -ASK until the end.
        slot = route_slot("up", "steady")
        before = w.counters().get("ask", 0)
        to = next(m for m in (a, b, c) if m != w.cluster.master_of_slot(slot))
        frm = w.cluster.migrate_begin(slot, to)
        wait_for(lambda: w.counters().get("ask", 0) >= before + 20, 20, "sentryq to follow -ASK", interval=0.05)
        w.cluster.migrate_end(slot, frm, to)
        moved_to = {n: w.cluster.master_of_slot(route_slot("up", n)) for n in names}
        # redis-cli moves a master's lowest slots: a's first ones went to b, and on to c with b's.
        check(all(moved_to[n] == c for n in names[:3]), "a's routes did not move on to %d: %s" % (c, moved_to))
        check(not load.done(), "the load finished before the reshards did")
        load.join(120)
        w.wait_drained(60)
        d = Delivery(led, w.mock.requests())
        cnt = w.counters()
        summary("cluster reshard", led, d, w.sq.status()[1]["counters"],
                "slots_moved=%d moved=%s ask=%s retried=%s refreshes=%s" % (
                    2 * MOVE + 1, cnt.get("moved"), cnt.get("ask"), cnt.get("retried"), cnt.get("refreshes")))
        check(cnt.get("moved", 0) >= 1, "sentryq followed no -MOVED: %s" % cnt)
        check(moved_to["steady"] == to, "the hand-moved slot is not on %d: %s" % (to, moved_to))
        check(set(led.statuses()) <= {"200", "503"}, "answers other than 200 and 503: %s" % led.statuses())
        check_delivery(led, d, allow_unacked=True)
        # The routes' keys are on the masters that serve their slots now.
        for n in names:
            m = w.cluster.by_port(w.cluster.master_of_slot(route_slot("up", n)))
            check(m.command("EXISTS", "sqc:{up:%s}q" % n) == 1, "route %s's stream is not on its slot's master" % n)
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
