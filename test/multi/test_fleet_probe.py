#!/usr/bin/python3
"""test_fleet_probe.py - a down upstream is probed by one process of the fleet, not by each
(fleet.sync, src/fleetsync.c): two sentryq processes on one Redis, each with its own mock Sentry
(same upstream name, two URLs: requests are counted per process), both mocks answering 503 after
0.3 s for 20 s past the moment both processes call the upstream down (the shipped outage_grace,
10 s, of failures first). From then on at most one request is in flight across the fleet, every
probe comes from the holder of the probe lease, /status says "fleet": "down" on both and
"probing_here" on exactly one. When the mocks answer 200 again the prober's probe ends the outage,
the other process resumes within about a fleet.sync_period, and everything is delivered.
The same run with fleet.sync = false is measured for comparison (each process probes on its own)."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import status_counters  # noqa: E402
from sqtest.world import Project, Sampler, World  # noqa: E402

DOWN_FOR = 20.0   # seconds of 503 after both processes are down
DELAY = 0.3       # each 503 takes this long: a probe is in flight for a measurable time
SETTLE = 1.5      # after both are down: the last retry wave of the slower one has been answered


def fleet_view(sq):
    u = sq.status()[1]["forward"]["upstreams"]["up"]
    return u["state"], u.get("fleet"), u.get("probing_here")


def max_overlap(recs):
    """Most requests in flight at once across the records ([t, answer_at] each)."""
    ev = sorted([(x["t"], 1) for x in recs] + [(x["answer_at"], -1) for x in recs], key=lambda e: (e[0], e[1]))
    cur = most = 0
    for _, d in ev:
        cur += d
        most = max(most, cur)
    return most


def run_outage(sync):
    w = World()
    try:
        p = Project("up", "fleetdown", 42)
        ma, mb = w.mock("a"), w.mock("b")
        for m in (ma, mb):
            m.program(default={"status": 503, "delay": DELAY})
        over = {} if sync else dict(fleet_sync=False)
        sq_a = w.start([("up", ma.url, [p])], consumer="relay-a", **over)  # the shipped defaults
        sq_b, port_b = w.start_other([("up", mb.url, [p])], consumer="relay-b", **over)
        led = Ledger()
        for i in range(20):
            led.send(w.port if i % 2 == 0 else port_b, p, "down", i)
        check(len(led.acked) == 20, "acknowledged %d of 20: %s" % (len(led.acked), led.statuses()))
        grace = w.settings["outage_grace"]
        wait_for(lambda: fleet_view(sq_a)[0] == "down" and fleet_view(sq_b)[0] == "down", grace + 10,
                 "both processes to call the upstream down", interval=0.1)
        t_down = time.monotonic()
        samples = Sampler(lambda: (fleet_view(sq_a), fleet_view(sq_b)), interval=0.25).start()
        wait_for(lambda: time.monotonic() >= t_down + DOWN_FOR, DOWN_FOR + 5, "the outage to last %.0f s" % DOWN_FOR,
                 interval=0.2)
        seen = samples.stop()
        t_up = min(ma.program(default={"status": 200}), mb.program(default={"status": 200}))
        d = w.wait_delivered(led, led.acked, 20)
        check_delivery(led, d, allow_unacked=False)
        ra = [x for x in ma.requests() if t_down + SETTLE <= x["t"] < t_up]
        rb = [x for x in mb.requests() if t_down + SETTLE <= x["t"] < t_up]
        overlap = max_overlap(ra + rb)
        first_ok = [min(x["t"] for x in m.requests() if x["status"] == 200) for m in (ma, mb)]
        return dict(t_down=t_down, w=w, d=d, led=led, ra=ra, rb=rb, overlap=overlap, seen=seen, t_up=t_up, first_ok=first_ok,
                    last=d.last_delivered_at(led.acked) - t_up)
    except BaseException:
        w.close()
        raise


def test_a_down_upstream_is_probed_by_one_process():
    r = run_outage(True)
    w = r["w"]
    try:
        ra, rb = r["ra"], r["rb"]
        # A process that went down by its own answers reads the fleet's record at its next read
        # (fleet.sync_period): /status is checked from SETTLE on, as the requests are.
        seen = [(t, v) for t, v in r["seen"] if t >= r["t_down"] + SETTLE]
        window = DOWN_FOR - SETTLE
        check(r["overlap"] <= 1, "%d requests in flight at once across the fleet while down" % r["overlap"])
        check(ra or rb, "no probe at all during %.0f s down" % window)
        check(not (ra and rb), "both processes probed while down: %d by relay-a, %d by relay-b" % (len(ra), len(rb)))
        both = [t for t, (a, b) in seen if a[2] and b[2]]
        check(not both, "/status said probing_here on both processes %d time(s)" % len(both))
        fleet = [t for t, (a, b) in seen if a[1] != "down" or b[1] != "down"]
        check(not fleet, "/status fleet was not \"down\" on both in %d of %d samples: %r" % (
            len(fleet), len(seen), [(round(t - r["t_down"], 2), v) for t, v in seen if v[0][1] != "down" or v[1][1] != "down"][:3]))
        one = sum(1 for _, (a, b) in seen if a[2] or b[2])
        check(one >= len(seen) - 2, "probing_here on neither process in %d of %d samples" % (len(seen) - one,
                                                                                          len(seen)))
        gap = abs(r["first_ok"][0] - r["first_ok"][1])
        check(gap <= w.settings["sync_period"] + 1.5, "the second process resumed %.2f s after the first" % gap)
        check(r["last"] <= 15, "the last event delivered %.2f s after the upstream was back" % r["last"])
        summary("fleet probe (sync)", r["led"], r["d"], w.counters(),
                "probes_in_%.0fs_down=%d (relay-a %d, relay-b %d) max_in_flight=%d second_resumed_after=%.2fs "
                "last_after_up=%.2fs" % (window, len(ra) + len(rb), len(ra), len(rb), r["overlap"], gap, r["last"]))
    finally:
        w.close()


def test_without_fleet_sync_each_process_probes():
    """The same outage with fleet.sync = false: measured for docs/scaling.md, only delivery asserted."""
    r = run_outage(False)
    w = r["w"]
    try:
        check(r["last"] <= 20, "the last event delivered %.2f s after the upstream was back" % r["last"])
        summary("fleet probe (sync off)", r["led"], r["d"], w.counters(),
                "probes_in_%.0fs_down=%d (relay-a %d, relay-b %d) max_in_flight=%d second_resumed_after=%.2fs "
                "last_after_up=%.2fs" % (DOWN_FOR - SETTLE, len(r["ra"]) + len(r["rb"]), len(r["ra"]), len(r["rb"]),
                                         r["overlap"], abs(r["first_ok"][0] - r["first_ok"][1]), r["last"]))
    finally:
        w.close()


def test_the_lease_moves_when_its_holder_dies():
    """The prober is SIGKILLed while the upstream is down: its lease expires (3 fleet.sync_periods)
    and the survivor takes it and probes; when the upstream is back everything is delivered (the
    dead process's pending entries too, claimed by the survivor). claim_idle is 5 s here (shipped:
    60 s, test_slow_takeover.py in the slow suite covers it) only so the dead process's entries
    are taken over within this case's seconds; the probe timings are the shipped ones."""
    w = World()
    try:
        p = Project("up", "fleetkill", 43)
        ma, mb = w.mock("a"), w.mock("b")
        for m in (ma, mb):
            m.program(default={"status": 503, "delay": DELAY})
        short = dict(claim_idle=5.0)
        sq_a = w.start([("up", ma.url, [p])], consumer="relay-a", **short)
        sq_b, port_b = w.start_other([("up", mb.url, [p])], consumer="relay-b", **short)
        led = Ledger()
        for i in range(20):
            led.send(w.port if i % 2 == 0 else port_b, p, "kill", i)
        check(len(led.acked) == 20, "acknowledged %d of 20: %s" % (len(led.acked), led.statuses()))

        def holder():
            a, b = fleet_view(sq_a), fleet_view(sq_b)
            if a[0] == "down" and b[0] == "down" and a[2] != b[2]:
                return "a" if a[2] else "b"
            return None
        who = wait_for(holder, w.settings["outage_grace"] + 10, "both down, one holding the probe lease",
                       interval=0.1)
        survivor, m_surv = (sq_b, mb) if who == "a" else (sq_a, ma)
        t_kill = time.monotonic()
        if who == "a":
            w.kill9()
        else:
            sq_b.kill9()
        period = w.settings["sync_period"]
        wait_for(lambda: fleet_view(survivor)[2], 3 * period + 3, "the survivor to take the probe lease",
                 interval=0.05)
        took = time.monotonic() - t_kill
        wait_for(lambda: [x for x in m_surv.requests() if x["t"] > t_kill + took], 10,
                 "a probe from the survivor after it took the lease", interval=0.1)
        t_up = min(ma.program(default={"status": 200}), mb.program(default={"status": 200}))
        d = w.wait_delivered(led, led.acked, 40)
        check_delivery(led, d, allow_unacked=False)
        summary("fleet probe lease takeover", led, d, status_counters(survivor),
                "killed=relay-%s lease_taken_after=%.2fs last_after_up=%.2fs" % (
                    who, took, d.last_delivered_at(led.acked) - t_up))
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
