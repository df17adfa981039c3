#!/usr/bin/python3
"""test_departed.py - a departed consumer is removed from the group only after its pending entries
were claimed (XGROUP DELCONSUMER drops a consumer's pending entries, redis#9745). Two processes,
default consumer names; A is SIGKILLed while its forwards hang at a stalling upstream, with
entries pending. XINFO CONSUMERS is sampled every 0.1 s: A stays in the group, pending, while it
is already idle past forward.departed_after; B takes A's entries over after forward.claim_idle;
A's pending count reaches 0 and only then is A removed (by B, which logs and counts it). B itself
stays, and everything acknowledged is delivered.

Shortened timings, to save wall time: forward.claim_idle 5 s (shipped 60 s; the slow suite's
test/faults/test_slow_takeover.py covers the shipped takeover) and forward.departed_after 2 s
(shipped 600 s), so that A is idle past departed_after for ~3 s while it still has entries
pending: a removal that ignored pending entries would happen in that window and lose them."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, free_port, wait_for  # noqa: E402
from sqtest.prom import scrape  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq  # noqa: E402
from sqtest.world import Project, Sampler, World, default_consumer  # noqa: E402

N = 20
SHORT = dict(claim_idle=5.0, departed_after=2.0)  # shortened: see the module docstring


def test_departed_consumer_removed_after_its_entries_were_claimed():
    w = World()
    b = None
    try:
        mock = w.mock("up")
        prj = Project("up", "dep", 42)
        ups = [("up", mock.url, [prj])]
        w.start(ups, **SHORT)
        port_b = free_port()
        b = Sentryq().start(w.config(port_b, ups, **SHORT), port_b)
        name_a, name_b = default_consumer(w.port), default_consumer(port_b)
        mock.program(default={"stall": 30})  # forwards hang: A's entries stay pending with A
        led = Ledger()
        for i in range(N):  # B reads the odd ones: both are in the group
            led.post(w.port if i % 2 == 0 else port_b, led.make(prj, "dep", i))
        check(len(led.acked) == N, "acknowledged %d of %d: %s" % (len(led.acked), N, led.statuses()))
        wait_for(lambda: w.group(prj).get(name_a, (0, 0))[0] > 0 and name_b in w.group(prj), 10,
                 "A holds pending entries, B is in the group")
        sampler = Sampler(lambda: w.group(prj), interval=0.1, limit=60).start()
        w.kill9()
        mock.program(default={"status": 200})
        wait_for(lambda: name_a not in w.group(prj), 30, "the departed consumer %s removed" % name_a)
        samples = sampler.stop()

        seen = [g[name_a] for _, g in samples if name_a in g]
        check(seen, "no sample saw %s in the group" % name_a)
        held = [(p, idle) for p, idle in seen if p > 0 and idle >= SHORT["departed_after"] * 1000]
        check(held, "A was never seen idle past departed_after with entries pending (samples %r)" % seen[-5:])
        check(seen[-1][0] == 0, "A was removed while it had %d entries pending (last samples %r)" % (
            seen[-1][0], seen[-5:]))
        check(all(name_b in g for _, g in samples), "B (this process's own name) left the group")
        check("removed departed consumer %s" % name_a in b.log_text(), "B never logged removing %s" % name_a)
        check(scrape(port_b).value("sentryq_group_consumers_removed_total") == 1, "B's removal counter")
        d = w.wait_delivered(led, led.acked, 30)
        summary("multi departed", led, d, {}, "claimed_then_removed=%s max_pending_seen=%d" % (
            name_a, max(p for p, _ in seen)))
        check_delivery(led, d, allow_unacked=False)
        check(set(w.group(prj)) == {name_b}, "the group is %r, want only B" % sorted(w.group(prj)))
    finally:
        if b is not None:
            b.stop(timeout=w.settings["shutdown_timeout"] + 10)
        w.close()


if __name__ == "__main__":
    main(globals())
