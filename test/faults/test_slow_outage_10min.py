#!/usr/bin/python3
"""test_slow_outage_10min.py (slow suite) - the upstream is down for 10 minutes (every request
answered 503 after 0.5 s, so that parallel sends would show at the mock), at the shipped defaults.
After forward.outage_grace (10 s) the upstream is down: /status says so (state, down_for_s,
retry_in_s), the log says when it went down, and from then on AT MOST ONE request is in flight
(/status in_flight and the mock's own concurrency, sampled throughout, and the mock's maximum),
the probe interval (send to send) growing x1.5 to forward.retry_max (60 s) and never beyond it. Every
acknowledged event is delivered, byte-identical, at most 60 s after the upstream is back (the
mock's own clock: from the program change to the last event's first 2xx)."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, Sampler, World, probe_times, upstream_state  # noqa: E402
N = 100
DOWN_S = 600.0
GOAL_S = 60.0
DELAY = 0.5


def test_ten_minutes_down():
    w = World()
    try:
        mock = w.mock("up")
        prj = Project("up", "tenmin", 71)
        w.start([("up", mock.url, [prj])])  # the shipped defaults
        s = w.settings
        led = Ledger()
        t_fault = mock.program(default={"status": 503, "delay": DELAY})
        Loader(led, w.port, [led.make(prj, "down", i) for i in range(N)], workers=8).start().join(30)
        check(len(led.acked) == N, "acknowledged %d of %d: %s" % (len(led.acked), N, led.statuses()))

        def sample():
            return upstream_state(w, "up"), mock.stats()["concurrent"]
        sampler = Sampler(sample, 0.1).start()
        wait_for(lambda: upstream_state(w, "up")["state"] == "down", s["outage_grace"] + 10,
                 "the upstream down after outage_grace", interval=0.1)
        t_down = time.monotonic()
        # The wave whose failure made it down was sent while interrupted (every connection): let it
        # drain, then from here on the mock must never see two requests at once.
        wait_for(lambda: upstream_state(w, "up")["in_flight"] <= 1 and mock.stats()["concurrent"] <= 1,
                 DELAY + 2, "the last interrupted wave answered", interval=0.05)
        mock.max_reset()
        t_settled = time.monotonic()
        time.sleep(max(0.0, t_fault + DOWN_S - time.monotonic()))  # the scenario: down for DOWN_S seconds
        mx = mock.stats()["max_concurrent"]
        t_back = mock.program(default={"status": 200})
        d = w.wait_delivered(led, led.acked, GOAL_S + 30)
        samples = sampler.stop()
        check_delivery(led, d, allow_unacked=False)
        w.wait_pending_zero()
        took = d.last_delivered_at(led.acked) - t_back
        down = [(t, u, conc) for t, (u, conc) in samples if t_settled <= t < t_back]
        check(len(down) > DOWN_S * 2, "only %d samples while down (sampling every 0.1 s)" % len(down))
        check(all(u["state"] == "down" for _, u, _ in down), "the upstream left the down state during the "
              "outage: %s" % sorted({u["state"] for _, u, _ in down}))
        sq_max = max(u["in_flight"] for _, u, _ in down)
        mock_max = max(conc for _, _, conc in down)
        check(sq_max <= 1 and mock_max <= 1 and mx <= 1,
              "while down: /status in_flight up to %d, the mock's sampled concurrency up to %d, its maximum %d "
              "(want at most the one probe)" % (sq_max, mock_max, mx))
        # /status while down: since when, and when the next probe goes out.
        for t, u, _ in down:
            check(abs(u["down_for_s"] - (t - t_fault)) <= 3.0, "down_for_s %.1f at %.1f s into the outage" % (
                u["down_for_s"], t - t_fault))
            check(0 <= u["retry_in_s"] <= s["retry_max"], "retry_in_s %.1f (retry_max %.0f)" % (
                u["retry_in_s"], s["retry_max"]))
        # The probes: one at a time, growing x1.5 (+-10 %) up to retry_max, never longer, each
        # interval from one probe's send to the next's (not from the 503 that came DELAY later).
        probes = [r for r in mock.requests() if t_settled <= r["t"] < t_back]
        gaps = [b["t"] - a["t"] for a, b in zip(probes, probes[1:])]
        _, model = probe_times(s, DOWN_S)
        check(3 <= len(probes) <= len(model), "%d probes in %.0f s down; the outage model allows at most %d" % (
            len(probes), DOWN_S, len(model)))
        check(max(gaps) <= s["retry_max"] + 0.5, "a probe interval of %.1f s, above retry_max (%.0f s)" % (
            max(gaps), s["retry_max"]))
        capped = [g for g in gaps if g >= 0.9 * s["retry_max"] - 0.5]
        check(len(capped) >= 5, "the probe interval never reached retry_max (%.0f s): gaps %s" % (
            s["retry_max"], [round(g, 1) for g in gaps]))
        # (gaps of 3 s and more: the 100 ms forward tick blurs the first ones)
        growth = [b / a for a, b in zip(gaps, gaps[1:]) if a >= 3.0 and b < 0.9 * s["retry_max"] - 0.5]
        check(all(1.5 * 0.9 / 1.1 - 0.05 <= g <= 1.5 * 1.1 / 0.9 + 0.05 for g in growth),
              "probe intervals do not grow x1.5 (+-10 %%): %s" % [round(g, 1) for g in gaps])
        log = w.sq.log_text()
        m = re.search(r"upstream up: down \(failing for (\d+)s\); probing with one request, next in ([\d.]+)s", log)
        check(m and int(m.group(1)) >= s["outage_grace"] - 1, "the log does not say when the upstream went down")
        check(len(re.findall(r"upstream up: still down after", log)) >= len(probes) - 1,
              "the log does not count the failed probes")
        m = re.search(r"upstream up: back up after ([\d.]+)s", log)
        check(m and float(m.group(1)) >= DOWN_S - 1, "the log does not say the upstream is back up after ~%.0f s" %
              DOWN_S)
        c = w.counters()
        summary("outage down-10min", led, d, c,
                "down_after=%.1fs probes=%d probe_gaps_s=%s max_in_flight_down=%d mock_max_concurrent_down=%d "
                "delivered_last_%.2fs_after_back (goal <= %.0fs)" % (
                    t_down - t_fault, len(probes), ",".join("%.1f" % g for g in gaps), sq_max, max(mx, mock_max),
                    took, GOAL_S))
        w.check_gauges()
        check(took <= GOAL_S, "the last event was delivered %.1f s after the upstream was back (goal <= %.0f s)" % (
            took, GOAL_S))
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
