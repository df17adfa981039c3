#!/usr/bin/python3
"""test_spread.py - routes spread over every master of a 3-master cluster (their slots are
asserted to map to all three), a mirrored project (its copies queued in the source route's slot
and read by the destination as an extra stream) and a large body (chunked under its own key, in
the route's slot): every acknowledged event is delivered, byte for byte, and sentryq's keys are
the hash-tagged ones, each on the master of its route's slot."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id  # noqa: E402
from sqtest.http import request  # noqa: E402
from sqtest.ledger import Delivery, Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.mock import rec_body  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.redis_cluster import ClusterWorld, route_slot  # noqa: E402
from sqtest.runner import main  # noqa: E402

TOTAL = 1200
BIG = 1536 * 1024  # bytes of a large attachment


def test_routes_spread_over_every_master():
    w = ClusterWorld()
    try:
        copy = w.prjs[-1]
        src = w.prjs[0]
        w.mirrors[src.name] = [copy.name]
        w.start()
        masters = w.cluster.masters()
        check(len(masters) == 3, "expected 3 masters: %s" % masters)
        owners = {p.name: w.cluster.master_of_slot(route_slot("up", p.name)) for p in w.prjs}
        check(len(set(owners.values())) == 3, "the routes' slots are not on 3 masters: %s" % owners)
        w.wait_following(masters)
        led = Ledger()
        eids = [led.make(w.prjs[i % (len(w.prjs) - 1)], "spread", i) for i in range(TOTAL)]
        Loader(led, w.port, eids, workers=8).start().join(120)
        # Large bodies (over 1 MiB: chunked under their own key, in the route's slot), one of them
        # to the mirrored project (its copy COPYed in the same slot by the put script).
        big = {}
        for k, p in enumerate((w.prjs[1], src)):
            e = new_event_id()
            body = (b'{"event_id":"%s"}\n{"type":"attachment","length":%d,"filename":"big.bin"}\n' % (
                e.encode(), BIG)) + (b"%d" % k) * BIG + b"\n"
            auth = "Sentry sentry_key=%s, sentry_version=7, sentry_secret=%s" % (p.upstream, p.name)
            r = request(w.port, "POST", p.api + "envelope/", [("X-Sentry-Auth", auth),
                        ("Content-Type", "application/x-sentry-envelope")], body, timeout=30)
            check(r.status == 200, "a large envelope was answered %d" % r.status)
            big[e] = (p, body)
        w.wait_drained(60)
        recs = w.mock.requests()
        for e, (p, body) in big.items():
            for dest in [p] + ([copy] if p is src else []):
                got_big = [r for r in recs if r["path"].startswith(dest.api) and e.encode() in rec_body(r)[:100]]
                bad = [(len(rec_body(r)), r["status"], next((i for i, (x, y) in enumerate(zip(rec_body(r), body))
                                                               if x != y), None)) for r in got_big
                       if rec_body(r) != body]
                check(got_big and not bad, "the large envelope %s did not reach %s whole: %d copies, %s "
                      "(length, status, first differing byte) against %d bytes sent" % (
                          e, dest.api, len(got_big), bad, len(body)))
        recs = [r for r in recs if not any(e.encode() in rec_body(r)[:100] for e in big)]
        # The mirror destination got its own copy of every event of the source project.
        to_copy = [rec_body(r) for r in recs if r["path"].startswith(copy.api)]
        src_eids = {e for e in led.acked if led.events[e][0] is src}
        got = {e for e in src_eids if any(e.encode() in b for b in to_copy)}
        check(got == src_eids, "the mirror got %d of %d copies" % (len(got), len(src_eids)))
        d = Delivery(led, [r for r in recs if not r["path"].startswith(copy.api)])
        summary("cluster spread", led, d, w.sq.status()[1]["counters"], "masters=%d routes=%d mirrored=%d large=%d" % (
            len(set(owners.values())), len(w.prjs), len(got), len(big)))
        check(set(led.statuses()) == {"200"}, "answers other than 200: %s" % led.statuses())
        check_delivery(led, d, allow_unacked=False)
        # Every key lives on the master of its route's slot: the streams, the per-route counters.
        for p in w.prjs:
            m = w.cluster.by_port(owners[p.name])
            check(m.command("EXISTS", "sqc:{up:%s}q" % p.name) == 1, "no stream for %s on its master" % p.name)
        mirror_key = "sqc:{up:%s}m:up:%s" % (src.name, copy.name)
        check(w.cluster.by_port(owners[src.name]).command("EXISTS", mirror_key) == 1,
              "no mirror stream in the source route's slot")
        total = sum(int(w.cluster.by_port(owners[p.name]).command("GET", "sqc:{up:%s}bytes" % p.name) or 0)
                    for p in w.prjs)
        check(total == 0, "per-route byte counters do not add up to 0 after the drain: %d" % total)
        wait_for(lambda: w.sq.status()[1]["queue"]["bytes"] == 0, 5, "queue.bytes summed to 0")
        # The group poll (XINFO CONSUMERS, the oldest-entry script) reaches every route's master:
        # each route that got entries shows this process as its consumer, nothing pending.
        me = w.sq.status()[1]["consumer"]

        def groups_polled():
            g = w.sq.status()[1]["group"]
            return all(g.get(p.label, {}).get("pending") == {me: 0} and g[p.label]["oldest_pending_s"] == 0
                       for p in w.prjs[:-1])
        wait_for(groups_polled, 10, "/status group of every route on its master: %s, nothing pending" % me)
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
