#!/usr/bin/python3
"""test_outage_stall.py - upstream A hangs for 12 s, longer than forward.timeout (10 s shipped):
every request reaching it is held and answered only when it recovers (the mock's pause). Upstream
B stays healthy. At the shipped defaults: B's events are all delivered while A hangs; A's forwards
time out after forward.timeout as one failure wave, A is interrupted and retried after about
forward.retry_initial with a bounded number of requests; every acknowledged event is delivered,
byte-identical, at most 5 s after A recovers (the mock's own clock: from the end of its pause to
the last event's first 2xx). The case first checks the mock's pause itself."""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.http import request  # noqa: E402
from sqtest.ledger import Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, Sampler, World, probe_times, upstream_state  # noqa: E402
N = 200  # more than forward.max_connections: a full wave hangs at A
STALL_S = 12.0
GOAL_S = 5.0


def check_pause(mock):
    """The mock's pause: a request arriving while paused is held (counted as concurrent), the
    control API still answers, and at the pause's end the request is answered by the program in
    force then; its record says when it arrived and when it was answered."""
    got = {}

    def post():
        got["r"] = request(mock.port, "POST", "/api/9/store/", [("Content-Type", "application/json")],
                           b'{"event_id": "%s"}' % (b"ab" * 16), timeout=10)
        got["t"] = time.monotonic()
    t0, until = mock.pause(1.0)
    th = threading.Thread(target=post, daemon=True)
    th.start()
    wait_for(lambda: mock.stats()["concurrent"] == 1, 0.9, "the request held by the paused mock", interval=0.02)
    mock.program(default={"status": 202})  # decided at the pause's end, so this program answers it
    th.join(5)
    check("r" in got and got["r"].status == 202, "held request answered %r, want the 202 in force at the end" %
          got.get("r"))
    check(got["t"] >= until, "held request answered %.3f s before the pause ended" % (until - got["t"]))
    rec = mock.requests()[-1]
    check(rec["arrived"] < until <= rec["t"] and rec["status"] == 202, "record of the held request %r" % (
        {k: rec[k] for k in ("arrived", "t", "status")},))
    st = mock.stats()
    check(st["concurrent"] == 0 and st["max_concurrent"] >= 1, "mock stats after the pause %r" % st)
    mock.reset()
    check(mock.count() == 0, "mock records not cleared")
    return until - t0


def test_stall_longer_than_timeout_while_b_flows():
    w = World()
    try:
        ma, mb = w.mock("A"), w.mock("B")
        check_pause(ma)
        pa, pb = Project("upa", "appa", 61), Project("upb", "appb", 62)
        w.start([("upa", ma.url, [pa]), ("upb", mb.url, [pb])])  # the shipped defaults
        s = w.settings
        conns = s["max_connections"]
        check(STALL_S > s["fwd_timeout"], "the stall must outlast forward.timeout")
        led = Ledger()
        sampler = Sampler(lambda: upstream_state(w, "upa"), 0.2).start()
        t_stall, t_back = ma.pause(STALL_S)  # the scenario: A hangs for STALL_S seconds, then answers
        # A first, so its entries occupy A's connections before B's arrive.
        Loader(led, w.port, [led.make(pa, "A", i) for i in range(N)], workers=4).start().join(30)
        wait_for(lambda: ma.stats()["concurrent"] >= conns, 5, "%d forwards hanging at A" % conns, interval=0.05)
        t_b = time.monotonic()
        Loader(led, w.port, [led.make(pb, "B", i) for i in range(N)], workers=4).start().join(30)
        check(len(led.acked) == 2 * N, "acknowledged %d of %d: %s" % (len(led.acked), 2 * N, led.statuses()))
        d = w.wait_delivered(led, led.of(pb), 5, names=["B"])
        b_last = d.last_delivered_at(led.of(pb))
        check(b_last < t_back, "B's last event delivered %.2f s after A recovered: B waited for A" % (b_last - t_back))
        check(not w.delivery(led, ["A"]).ok, "A answered 2xx while it hangs")
        d = w.wait_delivered(led, led.acked, STALL_S + 30)
        samples = sampler.stop()
        check_delivery(led, d, allow_unacked=False)
        w.wait_pending_zero()
        took = d.last_delivered_at(led.of(pa)) - t_back
        st_during = [u for t, u in samples if t < t_back]
        fail_at = [t for t, u in samples if t < t_back and u["state"] != "up"]
        check(fail_at, "A never showed interrupted while its forwards hung past forward.timeout")
        first_fail = min(fail_at) - t_stall
        check(s["fwd_timeout"] - 0.5 <= first_fail <= s["fwd_timeout"] + 1.5,
              "A's hung forwards failed %.1f s into the stall, want forward.timeout = %.0f s" % (
                  first_fail, s["fwd_timeout"]))
        check("down" not in {u["state"] for u in st_during}, "A went down within outage_grace")
        fails = max(u["failures"] for u in st_during)
        check(fails <= 3, "/status failures %d: the %d timeouts of one wave must count once" % (fails, conns))
        check(max(u["in_flight"] for u in st_during) <= conns, "in_flight above max_connections")
        # Requests that reached A while it hung: the first wave, then a retry wave about every
        # retry_initial after the timeouts. A hot loop would make many more.
        held = [r for r in ma.requests() if r["arrived"] < t_back]
        waves, _ = probe_times(s, STALL_S - s["fwd_timeout"])
        bound = conns * (1 + len(waves))
        check(conns <= len(held) <= bound, "%d requests reached A while it hung; want %d..%d" % (
            len(held), conns, bound))
        # The wave sentryq gave up on (timed out) was still answered 2xx by A when it recovered, at
        # the same moment as its resends: those, and only those, arrive twice (dup_gap ~0 here is
        # that, not two sends of one entry in parallel).
        check(d.dups <= conns, "%d duplicates; only the %d timed-out forwards may arrive twice" % (d.dups, conns))
        check(re.search(r"upstream upa: no answer; retrying in", w.sq.log_text()),
              "the log does not say A gave no answer")
        c = w.counters()
        summary("outage stall-12s-A-healthy-B", led, d, c,
                "B_last_delivered_%.2fs_after_posting A_first_failure_%.1fs_into_stall held_at_A=%d "
                "delivered_last_%.2fs_after_stall_end (goal <= %.0fs)" % (
                    b_last - t_b, first_fail, len(held), took, GOAL_S))
        w.check_gauges()
        check(took <= GOAL_S, "A's last event was delivered %.2f s after the stall ended (goal <= %.0f s)" % (
            took, GOAL_S))
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
