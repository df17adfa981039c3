#!/usr/bin/python3
"""test_fleet_rate_limit.py - a 429 learned by one sentryq process is honoured by another sharing
its Redis (fleet.sync, src/fleetsync.c), per category: two processes, one Redis, each process with
its own mock Sentry (same upstream name, two URLs) so that what each process sends is counted
apart. Both mocks answer the first transaction with 429 "20:transaction:key"; whichever process
forwards it is the learner, the other must then send no transaction of that project for the 20 s
while its error events still flow; afterwards everything is delivered. At the shipped defaults
(fleet.sync_period 1 s), on one Redis and on a Redis Cluster (the fleet's keys under one hash tag).
sentryq_fleet_sync_errors_total stays 0 on both processes."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Delivery, Ledger, check_delivery, eid_of, summary  # noqa: E402
from sqtest.mock import rec_body  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.prom import scrape  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import status_counters  # noqa: E402
from sqtest.world import FAULT_SETTINGS, Project, World  # noqa: E402

SECS = 20.0
HDRS = {"Retry-After": "20", "X-Sentry-Rate-Limits": "20:transaction:key"}
TXN = '"type":"transaction"'
TOL = 0.05      # clock granularity between the mock's t and sentryq's reading of the answer
SLACK = 3.0     # held transactions are delivered within this long after the limit ends


def limited_once(headers, **match):
    return dict(match, responses=[{"status": 429, "headers": headers, "count": 1}, {"status": 200}])


def txn_limit(sq, route):
    for lim in sq.status()[1]["forward"]["limits"].get(route, []):
        if lim["categories"] == "transaction" and lim["scope"] == "key":
            return lim
    return None


def standalone():
    """Two processes on one Redis, mocks "a" and "b". Returns (close, settings, [(Sentryq, port,
    Mock)] * 2, Project)."""
    w = World()
    try:
        p = Project("up", "fleetrl", 41)
        ma, mb = w.mock("a"), w.mock("b")
        sq_a = w.start([("up", ma.url, [p])], consumer="relay-a")  # the shipped defaults
        sq_b, port_b = w.start_other([("up", mb.url, [p])], consumer="relay-b")
        return w, w.settings, [(sq_a, w.port, ma), (sq_b, port_b, mb)], p
    except BaseException:
        w.close()
        raise


def cluster():
    """The same on a Redis Cluster (3 masters): the fleet's keys share one slot."""
    from sqtest.redis_cluster import ClusterWorld
    w = ClusterWorld(projects=["fleetrl"])
    try:
        p = w.prjs[0]
        sq_a = w.start(consumer="relay-a")  # the cluster suite's settings (redis_timeout 2)
        sq_b, port_b, mb = w.start_other(consumer="relay-b")
        return w, dict(FAULT_SETTINGS), [(sq_a, w.port, w.mock), (sq_b, port_b, mb)], p
    except BaseException:
        w.close()
        raise


def honoured(setup, case):
    w, settings, procs, p = setup()
    try:
        for _, _, m in procs:
            m.program(rules=[limited_once(HDRS, body_contains=TXN)])
        (sq_a, port_a, ma), (sq_b, port_b, mb) = procs
        led = Ledger()
        first, r = led.send_envelope(port_a, p, ["transaction"])
        check(r.status == 200, "the first transaction answered %r" % r)

        def the_429():
            for m, sq, other in ((ma, sq_a, (mb, sq_b)), (mb, sq_b, (ma, sq_a))):
                recs = [x for x in m.requests() if x["status"] == 429]
                if recs:
                    return recs[0], (m, sq), other
            return None
        rec429, (m_learn, _), (m_other, sq_other) = wait_for(the_429, 10, "the 429 at a mock")
        t429 = rec429["t"]
        # The other mock's one-shot 429 was never used: from now on it answers 200 to everything,
        # so a transaction the other process sent during the limit would be recorded and delivered.
        m_other.program(default={"status": 200})
        lim = wait_for(lambda: txn_limit(sq_other, p.label), 10,
                       "the other process's /status to list the transaction limit", interval=0.02)
        lag = time.monotonic() - t429
        period = settings["sync_period"]
        check(lag <= period + 1.0, "the other process listed the limit %.2f s after the 429 (sync_period %.1f s)"
              % (lag, period))
        check(SECS - lag - 1.5 < lim["seconds_left"] <= SECS, "seconds_left %r on the other process" % lim)
        # Traffic through both processes: transactions (held by both) and errors (flow on both).
        txns, errs = [first], []
        for i in range(6):
            port = port_a if i % 2 == 0 else port_b
            txns.append(led.send_envelope(port, p, ["transaction"])[0])
            errs.append(led.send_envelope(port, p, ["event"])[0])
            errs.append(led.send(port, p, "err", i)[0])
        check(len(led.acked) == len(txns) + len(errs), "acknowledged %d of %d: %s" % (
            len(led.acked), len(txns) + len(errs), led.statuses()))
        d = wait_delivered(led, (ma, mb), errs, 8)
        late = [e for e in errs if d.delivered_at(e) >= t429 + SECS]
        check(not late, "%d error events waited for the transaction limit" % len(late))
        by_other = {eid_of(rec_body(x)) for x in m_other.requests() if x["status"] == 200}
        check(any(e in by_other for e in errs), "the other process forwarded none of the error events")
        d = wait_delivered(led, (ma, mb), led.acked, SECS + 20)
        ids = set(txns)
        for m, who in ((m_other, "the other process"), (m_learn, "the learner")):
            early = [x for x in m.requests() if x["seq"] > (rec429["seq"] if m is m_learn else -1)
                     and eid_of(rec_body(x)) in ids and x["t"] < t429 + SECS - TOL]
            check(not early, "%s sent %d transactions during the limit (the first %.2f s after the 429)" % (
                who, len(early), min(x["t"] for x in early) - t429 if early else 0))
        bad = [e for e in txns if not t429 + SECS - TOL <= d.delivered_at(e) <= t429 + SECS + SLACK]
        check(not bad, "%d of %d transactions not delivered within %.1f s after the limit ended: %s" % (
            len(bad), len(txns), SLACK, [(e == first, round(d.delivered_at(e) - t429 - SECS, 2)) for e in bad]))
        check_delivery(led, d, allow_unacked=False)
        errors = [metric_errors(port) for _, port, _ in procs]
        check(errors == [0, 0], "sentryq_fleet_sync_errors_total %r" % errors)
        other_txn = sum(1 for x in m_other.requests() if eid_of(rec_body(x)) in ids)
        summary("fleet 429 honoured (%s)" % case, led, d, status_counters(sq_a),
                "other_listed_limit_after=%.2fs other_txn_requests_during_limit=0 other_txn_after=%d "
                "errors_last_after_429=%.2fs" % (lag, other_txn, d.last_delivered_at(errs) - t429))
    finally:
        w.close()


def wait_delivered(led, mocks, eids, timeout):
    eids = list(eids)

    def done():
        d = Delivery(led, [r for m in mocks for r in m.requests()])
        return d if all(e in d.ok for e in eids) else None
    return wait_for(done, timeout, "%d events delivered" % len(eids), interval=0.1)


def metric_errors(port):
    return scrape(port).value("sentryq_fleet_sync_errors_total")


def test_a_429_learned_by_one_process_holds_the_other():
    honoured(standalone, "one Redis")


def test_the_same_on_a_redis_cluster():
    honoured(cluster, "Redis Cluster")


if __name__ == "__main__":
    main(globals())
