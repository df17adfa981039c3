#!/usr/bin/python3
"""test_rate_limit.py - what the upstream's 429 holds, by data category, scope and duration, at the
shipped defaults (the durations come from the mock's 429 headers). Each limit holds only its
categories for its own time; an entry is held while any of its categories is limited; an
organization limit holds every project of that upstream and no other upstream; nothing held is
attempted before its limit ends, and then it is delivered. With rate_limits.passthrough SDKs get
429 only when every category of their request is limited, else 200 with X-Sentry-Rate-Limits.
/status forward.limits lists what is in force per route. Envelopes are built from real SDK items
(sqtest.fixtures.sdk_envelope: a python transaction, a node exception event)."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, eid_of, summary  # noqa: E402
from sqtest.mock import rec_body  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World, upstream_state  # noqa: E402
TOL = 0.05      # clock granularity: sentryq's limit starts when it reads the 429, after the mock's t
SLACK = 2.5     # held entries are delivered within this long after their limit ends
TXN = '"type":"transaction"'


def limited_once(headers, **match):
    """A mock rule: the first matching request gets 429 with headers, later ones 200."""
    return dict(match, responses=[{"status": 429, "headers": headers, "count": 1}, {"status": 200}])


def first_429(mock):
    recs = wait_for(lambda: [x for x in mock.requests() if x["status"] == 429], 10, "the 429 at the mock")
    check(len(recs) == 1, "%d 429 answers, want 1" % len(recs))
    return recs[0]


def limits(w):
    return w.status()["forward"]["limits"]


def wait_limit(w, route, categories, scope):
    """/status forward.limits[route] lists a limit with these categories and scope; returns it."""
    def find():
        for lim in limits(w).get(route, []):
            if lim["categories"] == categories and lim["scope"] == scope:
                return lim
        return None
    return wait_for(find, 5, "/status forward.limits[%r] to list %s (%s)" % (route, categories, scope),
                    interval=0.02)


def attempts(mock, eids, d_after_seq):
    """Mock records of eids after the record seq d_after_seq."""
    ids = set(eids)
    return [x for x in mock.requests() if x["seq"] > d_after_seq and eid_of(rec_body(x)) in ids]


def check_not_before(recs, t_until, what):
    early = [x for x in recs if x["t"] < t_until - TOL]
    check(not early, "%d attempts for %s before its limit ended (the first %.2f s early)" % (
        len(early), what, t_until - min(x["t"] for x in early) if early else 0))


def check_during(d, eids, t_until, what):
    late = [e for e in eids if d.delivered_at(e) is None or d.delivered_at(e) >= t_until]
    check(not late, "%d of %d %s not delivered while the limit was in force" % (len(late), len(eids), what))


def check_after(d, eids, t_from, what):
    bad = [e for e in eids if d.delivered_at(e) is None or not t_from - TOL <= d.delivered_at(e) <= t_from + SLACK]
    check(not bad, "%d of %d %s not delivered within %.1f s after their limit ended (%s)" % (
        len(bad), len(eids), what, SLACK, [None if d.delivered_at(e) is None else round(d.delivered_at(e) - t_from, 2)
                                           for e in bad[:3]]))


# ---------------------------------------------------------------- all categories, project scope

LIMIT = 3.0
LIMIT_HDRS = {"Retry-After": "3", "X-Sentry-Rate-Limits": "3::project"}


def setup_ab(passthrough):
    w = World()
    mock = w.mock("up")
    a, b = Project("up", "alpha", 31), Project("up", "beta", 32)
    mock.program(rules=[limited_once(LIMIT_HDRS, path_contains=a.api)])
    w.start([("up", mock.url, [a, b])], passthrough=passthrough)  # shipped defaults but passthrough
    return w, mock, a, b


def park_a(w, mock, led, a):
    """Post one event for A and wait for the mock's 429; returns (eid, record of the 429)."""
    eid, r = led.send(w.port, a, "A", 0)
    check(r is not None and r.status == 200, "first A event answered %r" % r)
    return eid, first_429(mock)


def test_429_parks_project_a_only():
    """3::project (every category): A is held for 3 s while B of the same upstream flows."""
    w, mock, a, b = setup_ab(False)
    try:
        led = Ledger()
        _, rec429 = park_a(w, mock, led, a)
        t429 = rec429["t"]
        lim = wait_limit(w, "up/31", "all", "project")
        check(0 < lim["seconds_left"] <= LIMIT, "seconds_left %r" % lim["seconds_left"])
        # Default: new SDK requests for the limited A are still accepted and queued.
        for i in range(1, 6):
            led.send(w.port, a, "A", i)
        for i in range(10):
            led.send(w.port, b, "B", i)
        check(len(led.acked) == 16, "acknowledged %d of 16: %s" % (len(led.acked), led.statuses()))
        d = w.wait_delivered(led, led.of(b), LIMIT - 0.6)
        check_during(d, led.of(b), t429 + LIMIT, "B events")
        st = upstream_state(w, "up")
        check(st["state"] == "up", "a 429 moved the upstream's outage state: %r" % st)
        d = w.wait_delivered(led, led.acked, 15)
        check_not_before(attempts(mock, led.of(a), rec429["seq"]), t429 + LIMIT, "project A (3::project)")
        check_after(d, led.of(a), t429 + LIMIT, "A events")
        check_delivery(led, d, allow_unacked=False)
        first_a = min(d.delivered_at(e) for e in led.of(a))
        c = w.counters()
        summary("ratelimit 3::project", led, d, c, "first_A_after_429=%.2fs B_last_after_429=%.2fs rate_limited=%s"
                % (first_a - t429, d.last_delivered_at(led.of(b)) - t429, c.get("rate_limited")))
        w.check_gauges()
        check(c.get("rate_limited", 0) >= 1, "counters.rate_limited %r after a 429" % c.get("rate_limited"))
        w.wait_pending_zero()
        check(limits(w) == {}, "/status forward.limits %r after the limit ended" % limits(w))
    finally:
        w.close()


def test_429_passthrough_answers_sdk_429():
    """3::project with passthrough: SDK requests for A get 429 + the remaining Retry-After, B 200."""
    w, mock, a, b = setup_ab(True)
    try:
        led = Ledger()
        eid0, rec429 = park_a(w, mock, led, a)
        t429 = rec429["t"]
        wait_limit(w, "up/31", "all", "project")
        _, r = led.send(w.port, a, "Ap", 0)
        check(r.status == 429, "an SDK request for the limited A answered %r" % r)
        ra = r.header("Retry-After")
        check(ra is not None and ra.strip().isdigit() and 1 <= int(ra) <= 3,
              "Retry-After %r on the passthrough 429, want 1..3" % ra)
        lim = r.header("X-Sentry-Rate-Limits")
        check(lim and re.match(r"^\d+::project$", lim), "X-Sentry-Rate-Limits %r on the passthrough 429" % lim)
        for i in range(5):
            _, rb = led.send(w.port, b, "Bp", i)
            check(rb is not None and rb.status == 200, "project B answered %r while A is limited" % rb)
            check(rb.header("X-Sentry-Rate-Limits") is None, "B's 200 carries A's limits %r" %
                  rb.header("X-Sentry-Rate-Limits"))
        d = w.wait_delivered(led, led.of(b), LIMIT - 1.0)
        # After the limit A is accepted again (poll: it ends at about t429 + 3).
        wait_for(lambda: led.send(w.port, a, "Aafter", 0)[1].status == 200, 8,
                 "project A accepted again after its limit ended", interval=0.2)
        d = w.wait_delivered(led, led.acked, 15)
        check_not_before(attempts(mock, led.of(a), rec429["seq"]), t429 + LIMIT, "project A")
        check(eid0 in d.ok, "the held A event was never delivered")
        # The 429-answered SDK requests were refused, so they must not be forwarded.
        check_delivery(led, d, allow_unacked=False)
        summary("ratelimit 3::project passthrough", led, d, w.counters(),
                "sdk_retry_after=%s sdk_limits=%r" % (ra, lim))
        w.check_gauges()
    finally:
        w.close()


# ---------------------------------------------------------------- one category

def test_transaction_limit_holds_only_transactions():
    """8:transaction:key: the project's error events (envelopes and store) keep flowing while its
    transactions wait the full 8 s, unsent, then arrive."""
    secs = 8.0
    w = World()
    try:
        mock = w.mock("up")
        p = Project("up", "txnapp", 33)
        mock.program(rules=[limited_once({"Retry-After": "8", "X-Sentry-Rate-Limits": "8:transaction:key"},
                                         body_contains=TXN)])
        w.start([("up", mock.url, [p])])  # the shipped defaults
        led = Ledger()
        t0, r = led.send_envelope(w.port, p, ["transaction"])
        check(r.status == 200, "the first transaction answered %r" % r)
        rec429 = first_429(mock)
        t429 = rec429["t"]
        lim = wait_limit(w, "up/33", "transaction", "key")
        check(secs - 1 < lim["seconds_left"] <= secs, "seconds_left %r, want about %.0f" % (lim["seconds_left"], secs))
        txns = [t0] + [led.send_envelope(w.port, p, ["transaction"])[0] for _ in range(4)]
        errs = [led.send_envelope(w.port, p, ["event"])[0] for _ in range(5)]
        errs += [led.send(w.port, p, "err", i)[0] for i in range(5)]
        check(len(led.acked) == 15, "acknowledged %d of 15: %s" % (len(led.acked), led.statuses()))
        d = w.wait_delivered(led, errs, 5)
        check_during(d, errs, t429 + secs, "error events")
        held = wait_for(lambda: w.status()["forward"]["held"].get("up/33"), 3, "/status forward.held for up/33")
        check(held >= 1, "forward.held %r" % held)
        d = w.wait_delivered(led, led.acked, secs + 15)
        check_not_before(attempts(mock, txns, rec429["seq"]), t429 + secs, "transactions (8:transaction:key)")
        check_after(d, txns, t429 + secs, "transactions")
        check_delivery(led, d, allow_unacked=False)
        summary("ratelimit 8:transaction:key", led, d, w.counters(),
                "errors_last_after_429=%.2fs txn_first_after_429=%.2fs txn_last_after_429=%.2fs held=%s" % (
                    d.last_delivered_at(errs) - t429, min(d.delivered_at(e) for e in txns[1:]) - t429,
                    d.last_delivered_at(txns) - t429, held))
        w.check_gauges()
        w.wait_pending_zero()
    finally:
        w.close()


# ---------------------------------------------------------------- organization scope

def org_case(header, categories, tag):
    """A 429 for project P1 of upstream "up" with an organization-scoped limit: P1 and P2 (same
    upstream) are held for what it names; P3 of upstream "other" (same server) flows."""
    secs = 5.0
    w = World()
    try:
        mock = w.mock("up")
        p1, p2 = Project("up", tag + "1", 41), Project("up", tag + "2", 42)
        p3 = Project("other", tag + "3", 43)
        match = dict(path_contains=p1.api)
        if categories == "transaction":
            match["body_contains"] = TXN
        mock.program(rules=[limited_once({"Retry-After": "5", "X-Sentry-Rate-Limits": header}, **match)])
        w.start([("up", mock.url, [p1, p2]), ("other", mock.url, [p3])])  # the shipped defaults
        led = Ledger()
        first, r = led.send_envelope(w.port, p1, ["transaction"])
        check(r.status == 200, "the first request answered %r" % r)
        rec429 = first_429(mock)
        t429 = rec429["t"]
        lim = wait_limit(w, "up", categories, "organization")
        check(secs - 1 < lim["seconds_left"] <= secs, "seconds_left %r" % lim["seconds_left"])
        check("up/41" not in limits(w), "an organization limit listed under the project: %r" % limits(w))
        held, flowing = [first], []
        for p in (p1, p2, p3):
            for _ in range(2):
                e = led.send_envelope(w.port, p, ["transaction"])[0]
                (flowing if p is p3 else held).append(e)
                e = led.send_envelope(w.port, p, ["event"])[0]
                (flowing if p is p3 or categories == "transaction" else held).append(e)
        check(len(led.acked) == 13, "acknowledged %d of 13: %s" % (len(led.acked), led.statuses()))
        d = w.wait_delivered(led, flowing, 4)
        check_during(d, flowing, t429 + secs, "events the limit does not name")
        d = w.wait_delivered(led, led.acked, secs + 15)
        check_not_before(attempts(mock, held, rec429["seq"]), t429 + secs, "P1 and P2 (%s)" % header)
        check_after(d, held, t429 + secs, "held events of P1 and P2")
        check_delivery(led, d, allow_unacked=False)
        summary("ratelimit %s" % header, led, d, w.counters(),
                "held=%d first_held_after_429=%.2fs flowing=%d flowing_last_after_429=%.2fs" % (
                    len(held), min(d.delivered_at(e) for e in held[1:]) - t429, len(flowing),
                    d.last_delivered_at(flowing) - t429))
        w.check_gauges()
        w.wait_pending_zero()
    finally:
        w.close()


def test_organization_limit_all_categories():
    org_case("5::organization", "all", "orgall")


def test_organization_limit_transactions():
    org_case("5:transaction:organization", "transaction", "orgtxn")


# ---------------------------------------------------------------- two limits, two durations

def test_two_limits_each_for_its_own_time():
    """12:transaction:project, 3:error:organization from one 429 for P1: errors of P1 and P2 resume
    after about 3 s; P1's transactions stay held until 12 s; P2's transactions (another project, and
    the organization limit names only errors) flow throughout."""
    t_txn, t_err = 12.0, 3.0
    w = World()
    try:
        mock = w.mock("up")
        p1, p2 = Project("up", "twolim1", 51), Project("up", "twolim2", 52)
        mock.program(rules=[limited_once({"Retry-After": "12",
                                          "X-Sentry-Rate-Limits": "12:transaction:project, 3:error:organization"},
                                         path_contains=p1.api)])
        w.start([("up", mock.url, [p1, p2])])  # the shipped defaults
        led = Ledger()
        e0, r = led.send_envelope(w.port, p1, ["event"])
        check(r.status == 200, "the first request answered %r" % r)
        rec429 = first_429(mock)
        t429 = rec429["t"]
        wait_limit(w, "up/51", "transaction", "project")
        wait_limit(w, "up", "error", "organization")
        txn1 = [led.send_envelope(w.port, p1, ["transaction"])[0] for _ in range(3)]
        txn2 = [led.send_envelope(w.port, p2, ["transaction"])[0] for _ in range(3)]
        errs = [e0] + [led.send_envelope(w.port, p, ["event"])[0] for p in (p1, p2, p1, p2)]
        errs += [led.send(w.port, p, "err", i)[0] for i, p in enumerate((p1, p2))]
        check(len(led.acked) == 13, "acknowledged %d of 13: %s" % (len(led.acked), led.statuses()))
        d = w.wait_delivered(led, txn2, 3)
        check_during(d, txn2, t429 + t_err, "P2 transactions")
        d = w.wait_delivered(led, errs, t_err + 5)
        check_not_before(attempts(mock, errs, rec429["seq"]), t429 + t_err, "errors (3:error:organization)")
        check_after(d, errs, t429 + t_err, "errors")
        lim = {x["categories"]: x for x in limits(w).get("up/51", [])}
        check("transaction" in lim and "up" not in limits(w),
              "after the error limit ended /status forward.limits is %r" % limits(w))
        d = w.wait_delivered(led, led.acked, t_txn + 15)
        check_not_before(attempts(mock, txn1, rec429["seq"]), t429 + t_txn, "P1 transactions (12:transaction:project)")
        check_after(d, txn1, t429 + t_txn, "P1 transactions")
        check_delivery(led, d, allow_unacked=False)
        summary("ratelimit 12:transaction:project,3:error:organization", led, d, w.counters(),
                "errors_first_after_429=%.2fs errors_last_after_429=%.2fs P1_txn_first_after_429=%.2fs "
                "P2_txn_last_after_429=%.2fs" % (
                    min(d.delivered_at(e) for e in errs) - t429, d.last_delivered_at(errs) - t429,
                    min(d.delivered_at(e) for e in txn1) - t429, d.last_delivered_at(txn2) - t429))
        w.check_gauges()
        w.wait_pending_zero()
    finally:
        w.close()


# ---------------------------------------------------------------- passthrough, mixed requests

def test_passthrough_mixed_request():
    """passthrough with 8:transaction:key in force: a transaction-only request gets 429 with the
    remaining Retry-After and the limit; an envelope with a transaction and an event gets 200 with
    X-Sentry-Rate-Limits and is held whole until the limit ends; an error-only request gets 200
    with the header and flows."""
    secs = 8.0
    w = World()
    try:
        mock = w.mock("up")
        p = Project("up", "mixapp", 34)
        mock.program(rules=[limited_once({"Retry-After": "8", "X-Sentry-Rate-Limits": "8:transaction:key"},
                                         body_contains=TXN)])
        w.start([("up", mock.url, [p])], passthrough=True)  # shipped defaults but passthrough
        led = Ledger()
        t0, r = led.send_envelope(w.port, p, ["transaction"])
        check(r.status == 200, "the first transaction answered %r" % r)
        rec429 = first_429(mock)
        t429 = rec429["t"]
        wait_limit(w, "up/34", "transaction", "key")
        txn, r = led.send_envelope(w.port, p, ["transaction"])
        left = t429 + secs - led.t_answer[txn]
        check(r.status == 429, "a transaction-only request answered %r while transactions are limited" % r)
        ra = r.header("Retry-After")
        check(ra and ra.isdigit() and abs(int(ra) - left) <= 1.0,
              "Retry-After %r on the 429, want the %.1f s left" % (ra, left))
        lim = r.header("X-Sentry-Rate-Limits") or ""
        m = re.match(r"^(\d+):transaction:key$", lim)
        check(m and abs(int(m.group(1)) - left) <= 1.0, "X-Sentry-Rate-Limits %r on the 429, want "
              "<%.0f>:transaction:key" % (lim, left))
        mixed, r = led.send_envelope(w.port, p, ["transaction", "event"])
        check(r.status == 200, "an envelope with a transaction and an event answered %r (only part of it is "
              "limited: Sentry accepts it)" % r)
        check(re.match(r"^\d+:transaction:key$", r.header("X-Sentry-Rate-Limits") or ""),
              "X-Sentry-Rate-Limits %r on the mixed envelope's 200" % r.header("X-Sentry-Rate-Limits"))
        errs = []
        for kinds in (["event"], None):
            e, r = led.send_envelope(w.port, p, kinds) if kinds else led.send(w.port, p, "err", 0)
            check(r.status == 200 and re.match(r"^\d+:transaction:key$", r.header("X-Sentry-Rate-Limits") or ""),
                  "an error-only request answered %r, X-Sentry-Rate-Limits %r" % (r, r.header("X-Sentry-Rate-Limits")))
            errs.append(e)
        d = w.wait_delivered(led, errs, 4)
        check_during(d, errs, t429 + secs, "error-only requests")
        d = w.wait_delivered(led, led.acked, secs + 15)
        check_not_before(attempts(mock, [t0, mixed], rec429["seq"]), t429 + secs, "the transaction and the mixed envelope")
        check_after(d, [mixed], t429 + secs, "the mixed envelope")
        check(txn not in d.attempts, "the transaction answered 429 was forwarded")
        _, r = led.send_envelope(w.port, p, ["transaction"])
        check(r.status == 200 and r.header("X-Sentry-Rate-Limits") is None,
              "a transaction after the limit answered %r, X-Sentry-Rate-Limits %r" % (r, r.header("X-Sentry-Rate-Limits")))
        d = w.wait_delivered(led, led.acked, 10)
        check_delivery(led, d, allow_unacked=False)
        summary("ratelimit passthrough mixed", led, d, w.counters(),
                "sdk_429_retry_after=%s sdk_429_limits=%r mixed_delivered_after_429=%.2fs errors_last_after_429=%.2fs"
                % (ra, lim, d.delivered_at(mixed) - t429, d.last_delivered_at(errs) - t429))
        w.check_gauges()
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
