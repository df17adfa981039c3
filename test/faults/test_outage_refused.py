#!/usr/bin/python3
"""test_outage_refused.py - nothing listens on the upstream's port (every connection refused) for
10 s and for 40 s, at the shipped defaults; then the mock starts on that very port. Within
forward.outage_grace (10 s) the upstream is interrupted and every connection retries about every
forward.retry_initial (1 s); after it the upstream is down, /status says so (down_for_s,
retry_in_s), the log says when it went down, and one probe at a time goes out at 1 s growing x1.5.
Every acknowledged event is delivered, byte-identical, at most 3 s (10 s outage) or 10 s (40 s
outage) after the port listens: from the mock's own listen() time to the last event's first 2xx."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, free_port  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, Sampler, World, probe_times, upstream_state  # noqa: E402
N = 100


def refused_for(tag, pid, fault_s, goal_s):
    w = World()
    try:
        port = free_port()
        mock = w.mock("up", port=port, start=False)
        prj = Project("up", tag, pid)
        w.start([("up", "http://127.0.0.1:%d" % port, [prj])])  # the shipped defaults
        s = w.settings
        conns = s["max_connections"]
        c0 = w.counters()
        led = Ledger()
        sampler = Sampler(lambda: upstream_state(w, "up"), 0.2).start()
        t_fault = time.monotonic()  # nothing listens on the port from here (it never did)
        Loader(led, w.port, [led.make(prj, tag, i) for i in range(N)], workers=8).start().join(30)
        check(len(led.acked) == N, "acknowledged %d of %d with Redis up: %s" % (len(led.acked), N, led.statuses()))
        pending = w.status()["queue"]["pending"]
        time.sleep(max(0.0, t_fault + fault_s - time.monotonic()))  # the scenario: refused for fault_s seconds
        c1 = w.counters()
        mock.start()
        t_listen = mock.stats()["listening_since"]
        d = w.wait_delivered(led, led.acked, goal_s + 30)
        samples = sampler.stop()
        check_delivery(led, d, allow_unacked=False)
        w.wait_pending_zero()
        took = d.last_delivered_at(led.acked) - t_listen
        check(pending > 0, "queue.pending was 0 while the upstream refused connections")
        outage = [(t, u) for t, u in samples if t < t_listen]
        states = [u["state"] for _, u in outage]
        check("interrupted" in states, "/status never showed the upstream interrupted while refused: %s" %
              sorted(set(states)))
        # Attempts while refused: one wave per ~retry_initial within the grace period, then one probe
        # at a time. A hot loop would make thousands.
        failed = c1.get("upstream_failed", 0) - c0.get("upstream_failed", 0)
        waves, probes = probe_times(s, fault_s)
        bound = conns * len(waves) + len(probes) + conns  # + a wave that failed as the port opened
        check(0 < failed <= bound, "%d failed attempts in %.0f s of refused connections; the outage model "
              "allows at most %d (%d waves of %d, then %d probes)" % (failed, fault_s, bound, len(waves), conns,
                                                                    len(probes)))
        # /status while the upstream was failing: since when, and when the next attempt goes out.
        for t, u in outage:
            if u["state"] == "up":
                continue
            check(0 <= u["down_for_s"] <= t - t_fault + 1.0,
                  "down_for_s %.2f at %.2f s into the outage" % (u["down_for_s"], t - t_fault))
            check(0 <= u["retry_in_s"] <= s["retry_max"], "retry_in_s %r" % u["retry_in_s"])
        down = [(t, u) for t, u in outage if u["state"] == "down"]
        log = w.sq.log_text()
        extra = ""
        if fault_s > s["outage_grace"] + 2 * s["retry_initial"]:
            check(down, "/status never showed the upstream down after %.0f s of refused connections "
                  "(outage_grace %.0f s): %s" % (fault_s, s["outage_grace"], sorted(set(states))))
            t_down = down[0][0]
            check(s["outage_grace"] - 0.5 <= t_down - t_fault <= s["outage_grace"] + 2 * s["retry_initial"] + 1,
                  "down %.1f s after the first refused connection, want about outage_grace = %.0f s" % (
                      t_down - t_fault, s["outage_grace"]))
            settled = [u for t, u in down if t >= t_down + 0.5]
            check(settled and max(u["in_flight"] for u in settled) <= 1,
                  "a down upstream had up to %d requests in flight (want at most the one probe)" %
                  max(u["in_flight"] for u in settled))
            check(max(u["down_for_s"] for u in settled) >= fault_s - s["outage_grace"],
                  "down_for_s reached only %.1f s in a %.0f s outage" % (
                      max(u["down_for_s"] for u in settled), fault_s))
            check(max(u["retry_in_s"] for u in settled) > s["retry_initial"] * 1.1,
                  "retry_in_s never grew past retry_initial while down: the probe interval does not grow")
            m = re.search(r"upstream up: down \(failing for (\d+)s\); probing with one request, next in ([\d.]+)s",
                          log)
            check(m, "the log does not say when the upstream went down")
            check(int(m.group(1)) >= s["outage_grace"] - 1, "logged down after %ss" % m.group(1))
            failed_probes = len(re.findall(r"upstream up: still down after", log))
            check(failed_probes <= len(probes), "%d failed probes logged, the model allows %d" % (
                failed_probes, len(probes)))
            extra = "down_after=%.1fs failed_probes=%d " % (t_down - t_fault, failed_probes)
        check(re.search(r"upstream up: back up after [\d.]+s", log), "the log does not say the upstream is back up")
        c = w.counters()
        summary("outage refused-%.0fs" % fault_s, led, d, c,
                "%supstream_failed=%d (bound %d) delivered_last_%.2fs_after_listen (goal <= %.0fs)" % (
                    extra, failed, bound, took, goal_s))
        w.check_gauges()
        check(took <= goal_s, "the last event was delivered %.2f s after the port listened (goal <= %.0f s)" % (
            took, goal_s))
    finally:
        w.close()


def test_refused_10s():
    refused_for("refused10", 51, 10.0, 3.0)


def test_refused_40s():
    refused_for("refused40", 52, 40.0, 10.0)


if __name__ == "__main__":
    main(globals())
