#!/usr/bin/python3
"""test_outage_503.py - a 4 s burst of 503 that starts while a full wave of forwards (16, the
shipped forward.max_connections) is outstanding at the upstream, at the shipped defaults. The wave
of 16 failures counts once, the upstream is interrupted (not down: 4 s is inside the 10 s
forward.outage_grace) and retried about every forward.retry_initial (1 s) with a bounded number of
attempts; every acknowledged event is delivered, byte-identical, at most 3 s after the burst ends
(the mock's own clock: from the program change that ends the burst to the last event's first 2xx).
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, Sampler, World, probe_times, upstream_state  # noqa: E402
N = 200
BURST_S = 4.0
GOAL_S = 3.0


def test_503_burst_with_a_full_wave_in_flight():
    w = World()
    try:
        mock = w.mock("up")
        prj = Project("up", "burst", 21)
        w.start([("up", mock.url, [prj])])  # the shipped defaults
        conns = w.settings["max_connections"]
        c0 = w.counters()
        # Every forward is held at the mock until the burst starts, so a full wave is outstanding
        # then. The pause is ended explicitly below; its 60 s only bounds it should the case fail.
        mock.pause(60)
        led = Ledger()
        Loader(led, w.port, [led.make(prj, "burst", i) for i in range(N)], workers=8).start().join(30)
        check(len(led.acked) == N, "sentryq acknowledged %d of %d events: %s" % (len(led.acked), N, led.statuses()))
        wait_for(lambda: mock.stats()["concurrent"] >= conns, 8,
                 "%d forwards outstanding at the paused mock" % conns, interval=0.05)
        held = mock.stats()["concurrent"]
        check(held == conns, "%d forwards outstanding, want forward.max_connections = %d" % (held, conns))
        check(upstream_state(w, "up")["in_flight"] == conns, "/status in_flight %r with %d held at the mock" % (
            upstream_state(w, "up")["in_flight"], conns))
        sampler = Sampler(lambda: upstream_state(w, "up"), 0.1).start()
        t_burst = mock.program(default={"status": 503})
        mock.pause(0)  # the held wave is answered now, by the 503 program: the burst starts with 16 in flight
        pending = w.status()["queue"]["pending"]
        time.sleep(max(0.0, t_burst + BURST_S - time.monotonic()))  # the scenario: 503 for BURST_S seconds
        t_end = mock.program(default={"status": 200})
        d = w.wait_delivered(led, led.acked, 30)
        samples = sampler.stop()
        check_delivery(led, d, allow_unacked=False)
        w.wait_pending_zero()
        took = d.last_delivered_at(led.acked) - t_end
        recs = mock.requests()
        first_wave = [r for r in recs if r["arrived"] < t_burst]
        check(len(first_wave) == conns and all(r["status"] == 503 for r in first_wave),
              "the wave held when the burst started: %d requests, statuses %s (want %d x 503)" % (
                  len(first_wave), sorted({r["status"] for r in first_wave}), conns))
        during = [r for r in recs if t_burst <= r["t"] < t_end]
        waves, _ = probe_times(w.settings, BURST_S)
        bound = conns * (len(waves) + 1)
        check(len(during) <= bound, "%d attempts during the %.0f s burst; the outage model allows at most %d "
              "(%d waves of %d): retried without waiting?" % (len(during), BURST_S, bound, len(waves) + 1, conns))
        burst = [s for t, s in samples if t_burst + 0.3 <= t < t_end]
        states = sorted({s["state"] for s in burst})
        check(burst and states == ["interrupted"], "upstream state during a %.0f s burst (grace %.0f s): %s, "
              "want only interrupted" % (BURST_S, w.settings["outage_grace"], states))
        fails = max(s["failures"] for s in burst)
        check(1 <= fails <= len(waves) + 1,
              "/status failures reached %d during the burst: a wave of %d concurrent failures must count once "
              "(%d waves possible)" % (fails, conns, len(waves) + 1))
        check(all(s["in_flight"] <= conns for _, s in samples), "in_flight above max_connections")
        retry_in = [s["retry_in_s"] for s in burst]
        check(max(retry_in) <= w.settings["retry_initial"] * 1.1 + 0.05,
              "retry_in_s up to %.2f during the burst, want <= retry_initial (+10 %% jitter)" % max(retry_in))
        log = w.sq.log_text()
        check(len(re.findall(r"upstream up: answered with a server error; retrying in", log)) == 1,
              "the log does not say once that the upstream failed (one line per outage, not per request)")
        check("upstream up: back up after" in log, "the log does not say the upstream is back up")
        check(upstream_state(w, "up")["state"] == "up", "upstream not up after the burst")
        c = w.counters()
        check(pending > 0, "queue.pending was 0 while the upstream answered 503")
        check(c.get("retried", 0) - c0.get("retried", 0) > 0, "counters.retried did not move after 503 answers")
        check(c.get("forwarded", 0) - c0.get("forwarded", 0) >= N, "counters.forwarded moved by %d, want >= %d" % (
            c.get("forwarded", 0) - c0.get("forwarded", 0), N))
        summary("outage 503-burst-4s-16-in-flight", led, d, c,
                "held_at_start=%d attempts_during_burst=%d waves=%d delivered_last_%.2fs_after_burst_end "
                "(goal <= %.0fs) upstream_failed=%d" % (
                    len(first_wave), len(during), fails, took, GOAL_S,
                    c.get("upstream_failed", 0) - c0.get("upstream_failed", 0)))
        w.check_gauges()
        check(took <= GOAL_S, "the last event was delivered %.2f s after the burst ended (goal <= %.0f s)" % (
            took, GOAL_S))
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
