#!/usr/bin/python3
"""test_reload.py - a reload in cluster mode: routes on every master and a mirror (its copies queued
in the source route's slot) added by SIGHUP get their streams' consumer groups made on their
masters before anything is queued to them, and every event sent to them, and every mirror copy,
is delivered; a request sent while the groups are being made goes to the memory buffer, not lost."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Delivery, Ledger, check_delivery  # noqa: E402
from sqtest.mock import rec_body  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.redis_cluster import ClusterWorld, route_slot  # noqa: E402
from sqtest.runner import main  # noqa: E402

PER_ROUTE = 10


def test_routes_and_mirror_added_by_reload_are_delivered():
    w = ClusterWorld()
    try:
        every = list(w.prjs)
        first, added = every[0], every[1:]
        masters = {w.cluster.master_of_slot(route_slot("up", p.name)) for p in every}
        w.prjs = [first]
        w.start()
        led = Ledger()
        _, r = led.send(w.port, added[0], "before", 0)
        check(r.status == 403, "a route not yet configured answered %d" % r.status)
        w.prjs = every
        w.mirrors[first.name] = [added[0].name]
        check(w.sq.reload(w.config()) == "applied", "the reload was refused")
        eids = {p.name: [led.send(w.port, p, "added", i)[0] for i in range(PER_ROUTE)] for p in every}
        sent = [e for v in eids.values() for e in v]
        check(set(sent) <= led.acked, "events not acknowledged after the reload: %s" % led.statuses())

        def copies():
            recs = [x for x in w.mock.requests() if x["status"] == 200]
            return {e for x in recs if x["path"].startswith(added[0].api) for e in eids[first.name]
                    if e.encode() in rec_body(x)}
        wait_for(lambda: len(copies()) == PER_ROUTE, 30, "the %d mirror copies delivered" % PER_ROUTE)
        wait_for(lambda: all(e in Delivery(led, w.mock.requests()).ok for e in sent), 30, "every event delivered")
        dl = Delivery(led, w.mock.requests())
        check_delivery(led, dl)
        w.wait_drained(30)
        print("# SUMMARY cluster reload: routes_added=%d masters=%d delivered=%d mirror_copies=%d" % (
            len(added), len(masters), len(dl.ok), len(copies())), flush=True)
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
