#!/usr/bin/python3
"""test_slow_departed.py (slow suite) - the departed-consumer removal of test/multi/test_departed.py
at the shipped forward.departed_after (600 s): two sentryq processes with default consumer names
share one Redis and deliver everything (nothing pending); A is SIGKILLed. B removes A from the
group once A has been idle for departed_after: never sooner, and at most the group poll's period
(2 s) plus slack later, both judged by A's idle as Redis reports it (sampled every second). B
stays, logs and counts the removal."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.prom import scrape  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, Sampler, World, default_consumer  # noqa: E402

N = 20
POLL = 2.0    # the group poll's period (README: sentryq_group_consumers, polled every 2 s)
SLACK = 5.0


def test_departed_consumer_removed_at_the_shipped_departed_after():
    w = World()
    try:
        mock = w.mock("up")
        prj = Project("up", "gone", 43)
        ups = [("up", mock.url, [prj])]
        w.start(ups)  # the shipped defaults
        after = w.settings["departed_after"]
        check(after == 600.0, "etc/sentryq.conf ships departed_after %r: this case is written for 600" % after)
        b, port_b = w.start_other(ups)
        name_a, name_b = default_consumer(w.port), default_consumer(port_b)
        led = Ledger()
        for i in range(N):  # both read: both are in the group
            led.post(w.port if i % 2 == 0 else port_b, led.make(prj, "gone", i))
        check(len(led.acked) == N, "acknowledged %d of %d: %s" % (len(led.acked), N, led.statuses()))
        check_delivery(led, w.wait_delivered(led, led.acked, 30), allow_unacked=False)
        wait_for(lambda: {name_a, name_b} <= set(w.group(prj)) and
                 all(p == 0 for p, _ in w.group(prj).values()), 10, "both consumers in the group, nothing pending")
        w.kill9()
        t_kill = time.monotonic()
        sampler = Sampler(lambda: w.group(prj), interval=1.0, limit=after + 120).start()
        wait_for(lambda: name_a not in w.group(prj), after + POLL + SLACK + 30,
                 "the departed consumer %s removed" % name_a, interval=0.5)
        t_gone = time.monotonic()
        samples = sampler.stop() + [(time.monotonic(), w.group(prj))]  # the last one without A
        # Judged by A's idle as Redis counts it (XINFO CONSUMERS, what sentryq compares with
        # departed_after), not by this test's clock: Redis counts idle on the wall clock, which a
        # paused and resumed VM moves against the monotonic one (seen: 6.6 s).
        last = max((i for i, (_, g) in enumerate(samples) if name_a in g), default=None)
        check(last is not None and last + 1 < len(samples), "no sample saw A in the group, then without it")
        (t1, g1), (t2, _) = samples[last], samples[last + 1]
        idle1 = g1[name_a][1] / 1000.0
        check(idle1 + (t2 - t1) >= after, "A removed before its idle reached departed_after: idle %.1f s when "
              "last seen, removed within the next %.1f s (departed_after %.0f s)" % (idle1, t2 - t1, after))
        check(idle1 <= after + POLL + SLACK, "A still in the group with idle %.1f s (departed_after %.0f s, "
              "polled every %.0f s)" % (idle1, after, POLL))
        check(all(name_b in g for _, g in samples), "B (this process's own name) left the group")
        check("removed departed consumer %s" % name_a in b.log_text(), "B never logged removing %s" % name_a)
        check(scrape(port_b).value("sentryq_group_consumers_removed_total") == 1, "B's removal counter")
        check(set(w.group(prj)) == {name_b}, "the group is %r, want only B" % sorted(w.group(prj)))
        summary("departed at departed_after=%.0fs" % after, led, w.delivery(led), {},
                "removed_%.1fs_after_kill idle_when_last_seen=%.1fs (departed_after %.0f, want <= %.0f)" % (
                    t_gone - t_kill, idle1, after, after + POLL + SLACK))
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
