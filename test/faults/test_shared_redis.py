#!/usr/bin/python3
"""test_shared_redis.py - two sentryq processes share one Redis (consumers "relay-a" and
"relay-b" of one group). Both ingest and split the forwarding. relay-a is SIGKILLed while its
forwards hang on a stalling upstream: relay-b (whose own hung forwards time out after the shipped
forward.timeout, 10 s, and are retried) takes over the entries relay-a left pending once they have
been idle for forward.claim_idle and delivers them; nothing acknowledged by either process is lost.
claim_idle is 2 s here (shipped: 60 s, covered by test_slow_takeover.py in the slow suite)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, free_port, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq  # noqa: E402
from sqtest.world import Project, World  # noqa: E402


def test_survivor_takes_over_the_dead_consumers_entries():
    w = World()
    b = None
    try:
        mock = w.mock("up")
        prj = Project("up", "shared", 85)
        ups = [("up", mock.url, [prj])]
        # claim_idle shortened from the shipped 60 s so the takeover happens within this case's
        # seconds; test_slow_takeover.py covers the shipped claim_idle (slow suite).
        short = dict(claim_idle=2.0)
        w.start(ups, consumer="relay-a", **short)
        port_b = free_port()
        b = Sentryq().start(w.config(port_b, ups, consumer="relay-b", **short), port_b)
        led = Ledger()
        mock.program(default={"stall": 60})  # every forward hangs: entries stay pending where read
        for i in range(20):
            led.post(w.port if i % 2 == 0 else port_b, led.make(prj, "shared", i))
        check(len(led.acked) == 20, "acknowledged %d of 20: %s" % (len(led.acked), led.statuses()))
        wait_for(lambda: w.status()["forward"]["in_flight"] > 0, 15, "relay-a has forwards hanging upstream")
        w.kill9()
        mock.program(default={"status": 200})
        d = w.wait_delivered(led, led.acked, w.settings["fwd_timeout"] + 20)
        summary("shared-redis takeover", led, d, {}, "killed=relay-a")
        check_delivery(led, d, allow_unacked=False)
        check("took over" in b.log_text(), "relay-b never logged taking over relay-a's entries")
    finally:
        if b is not None:
            b.stop(timeout=w.settings["shutdown_timeout"] + 10)
        w.close()


if __name__ == "__main__":
    main(globals())
