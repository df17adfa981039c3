#!/usr/bin/python3
"""test_rate_limit.py - fault case 2: the upstream answers 429 (Retry-After: 3, X-Sentry-Rate-Limits:
3::project) for project A. A is parked: no upstream attempt for A for 3 s while project B (same
upstream) flows; then A's events are delivered. Variant with rate_limits.passthrough = true: a new SDK
request for the parked A gets 429 with the remaining Retry-After and the limits header; B gets 200."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World, upstream_state  # noqa: E402
LIMIT = 3.0
TOL = 0.3
LIMIT_HDRS = {"Retry-After": "3", "X-Sentry-Rate-Limits": "3::project"}


def setup(passthrough):
    w = World()
    mock = w.mock("up")
    a, b = Project("up", "alpha", 31), Project("up", "beta", 32)
    mock.program(rules=[{"path_contains": a.api, "responses": [
        {"status": 429, "headers": LIMIT_HDRS, "count": 1}, {"status": 200}]}])
    w.start([("up", mock.url, [a, b])], passthrough=passthrough)
    return w, mock, a, b


def park_a(w, mock, led, a):
    """Post one event for A and wait for the mock's 429; returns (eid, record of the 429)."""
    eid, r = led.send(w.port, a, "A", 0)
    check(r is not None and r.status == 200, "first A event answered %r" % r)
    recs = wait_for(lambda: [x for x in mock.requests() if x["status"] == 429], 10,
                    "the 429 for project A at the mock")
    check(len(recs) == 1, "%d 429 answers" % len(recs))
    return eid, recs[0]


def a_attempts_after(mock, a, rec429):
    return [x for x in mock.requests() if a.api in x["path"] and x["seq"] > rec429["seq"]]


def test_429_parks_project_a_only():
    w, mock, a, b = setup(False)
    try:
        led = Ledger()
        _, rec429 = park_a(w, mock, led, a)
        t429 = rec429["t"]
        # Default: new SDK requests for the parked A are still accepted and queued.
        for i in range(1, 6):
            led.send(w.port, a, "A", i)
        for i in range(10):
            led.send(w.port, b, "B", i)
        check(len(led.acked) == 16, "acknowledged %d of 16: %s" % (len(led.acked), led.statuses()))
        d = w.wait_delivered(led, led.of(b), LIMIT - TOL - 0.3)
        late_b = [e for e in led.of(b) if min(r["t"] for r in d.attempts[e]) > t429 + LIMIT - TOL]
        check(not late_b, "%d B events only reached the upstream after A's limit expired" % len(late_b))
        early = [x for x in a_attempts_after(mock, a, rec429) if x["t"] < t429 + LIMIT - TOL]
        check(not early, "%d attempts for parked project A %.2fs after its 429 (Retry-After 3)" % (
            len(early), early[0]["t"] - t429 if early else 0))
        st = upstream_state(w, "up")
        d = w.wait_delivered(led, led.acked, 15)
        early = [x for x in a_attempts_after(mock, a, rec429) if x["t"] < t429 + LIMIT - TOL]
        check(not early, "%d attempts for parked project A %.2fs after its 429 (Retry-After 3)" % (
            len(early), early[0]["t"] - t429 if early else 0))
        check_delivery(led, d, allow_unacked=False)
        first_a = min(x["t"] for x in a_attempts_after(mock, a, rec429))
        c = w.counters()
        summary("case2 429-park", led, d, c, "first_A_retry_after_429=%.2fs rate_limited=%s" % (
            first_a - t429, c.get("rate_limited")))
        w.check_gauges()
        check(c.get("rate_limited", 0) >= 1, "counters.rate_limited %r after a 429" % c.get("rate_limited"))
        print("# upstream state while parked: %r" % st)
        w.wait_pending_zero()
    finally:
        w.close()


def test_429_passthrough_answers_sdk_429():
    w, mock, a, b = setup(True)
    try:
        led = Ledger()
        eid0, rec429 = park_a(w, mock, led, a)
        t429 = rec429["t"]
        # The mock answered the 429; sentryq parks A when it processes the answer: poll briefly.
        r = wait_for(lambda: (lambda x: x if x.status == 429 else None)(led.send(w.port, a, "Ap", 0)[1]),
                     1.5, "an SDK request for parked project A to get 429")
        ra = r.header("Retry-After")
        check(ra is not None and ra.strip().isdigit() and 1 <= int(ra) <= 3,
              "Retry-After %r on the passthrough 429, want 1..3" % ra)
        lim = r.header("X-Sentry-Rate-Limits")
        check(lim and "project" in lim and lim.split(":")[0].strip().isdigit(),
              "X-Sentry-Rate-Limits %r on the passthrough 429" % lim)
        for i in range(5):
            _, rb = led.send(w.port, b, "Bp", i)
            check(rb is not None and rb.status == 200, "project B answered %r while A is parked" % rb)
        d = w.wait_delivered(led, led.of(b), LIMIT - TOL - 0.5)
        # After the limit A is accepted again (poll: expiry is ~t429 + 3).
        wait_for(lambda: led.send(w.port, a, "Aafter", 0)[1].status == 200, 8,
                 "project A accepted again after its limit expired", interval=0.2)
        d = w.wait_delivered(led, led.acked, 15)
        early = [x for x in a_attempts_after(mock, a, rec429) if x["t"] < t429 + LIMIT - TOL]
        check(not early, "%d attempts for parked A %.2fs after its 429" % (
            len(early), early[0]["t"] - t429 if early else 0))
        check(eid0 in d.ok, "the parked A event was never delivered")
        # The 429-answered SDK requests were refused, so they must not be forwarded.
        check_delivery(led, d, allow_unacked=False)
        summary("case2b 429-passthrough", led, d, w.counters(),
                "sdk_retry_after=%s sdk_limits=%r" % (ra, lim))
        w.check_gauges()
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
