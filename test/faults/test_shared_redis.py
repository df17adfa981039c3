#!/usr/bin/python3
"""test_shared_redis.py - two sentryq processes share one Redis (consumers "relay-a" and
"relay-b" of one group). Both ingest and split the forwarding. relay-a is SIGKILLed while its
forwards hang on a stalling upstream: relay-b (whose own hung forwards time out after 2 s and are
retried) takes over the entries relay-a left pending once they have been idle for
forward.claim_idle (2 s) and delivers them; nothing acknowledged by either process is lost."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as F  # noqa: E402

H = F.H


def test_survivor_takes_over_the_dead_consumers_entries():
    w = F.World()
    b = None
    try:
        mock = w.mock("up")
        prj = F.Project("up", "shared", 85)
        ups = [("up", mock.url, [prj])]
        w.start(ups, forward_extra='consumer = "relay-a"; ', fwd_timeout=30.0)  # a never times out
        port_b = H.free_port()
        b = H.Sentryq().start(F.make_config(port_b, w.redis.port, ups, forward_extra='consumer = "relay-b"; ',
                                            fwd_timeout=2.0), port_b)
        led = F.Ledger()
        mock.program(default={"stall": 60})  # every forward hangs: entries stay pending where read
        for i in range(20):
            led.post(w.port if i % 2 == 0 else port_b, led.make(prj, "shared", i))
        H.check(len(led.acked) == 20, "acknowledged %d of 20: %s" % (len(led.acked), led.statuses()))
        H.wait_for(lambda: w.status()["forward"]["in_flight"] > 0, 15, "relay-a has forwards hanging upstream")
        w.kill9()
        mock.program(default={"status": 200})
        d = w.wait_delivered(led, led.acked, 25)
        F.summary("shared-redis takeover", led, d, {}, "killed=relay-a")
        F.check_delivery(led, d, allow_unacked=False)
        H.check("took over" in b.log_text(), "relay-b never logged taking over relay-a's entries")
    finally:
        if b is not None:
            b.stop(timeout=40)
        w.close()


if __name__ == "__main__":
    F.run(globals())
