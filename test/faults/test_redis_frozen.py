#!/usr/bin/python3
"""test_redis_frozen.py - redis-server stops answering without closing its socket (SIGSTOP, as a
hung or swapping Redis does) for 3 s. hiredis 0.14 has no timeout of its own: sentryq must notice
within redis.timeout (1 s), drop the connection, keep accepting into its memory buffer, and once
Redis answers again (SIGCONT) reconnect and deliver everything it acknowledged."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World  # noqa: E402
FROZEN_S = 3.0


def test_unanswered_commands_time_out():
    w = World()
    try:
        mock = w.mock("up")
        prj = Project("up", "frozenapp", 84)
        w.start([("up", mock.url, [prj])], buffer_bytes=67108864, redis_timeout=1.0)
        led = Ledger()
        for i in range(10):
            led.send(w.port, prj, "before", i)
        w.redis.proc.send_signal(signal.SIGSTOP)
        t0 = time.time()
        try:
            # A put now gets no answer: the watchdog must give up on the connection.
            for i in range(10):
                led.send(w.port, prj, "frozen", i, timeout=10.0)
            wait_for(lambda: not w.status()["redis"]["connected"], 3.0,
                     "/status redis.connected false within redis.timeout (1 s) + slack", interval=0.05)
            noticed = time.time() - t0
            check(w.status()["queue"]["buffered"] > 0 or len(led.acked) == 20,
                  "nothing buffered while Redis was frozen: %r" % w.status()["queue"])
            time.sleep(max(0.0, FROZEN_S - (time.time() - t0)))  # the scenario: Redis stays frozen
        finally:
            w.redis.proc.send_signal(signal.SIGCONT)
        check(len(led.acked) == 20, "acknowledged %d of 20: %s" % (len(led.acked), led.statuses()))
        d = w.wait_delivered(led, led.acked, 30)
        summary("redis-frozen", led, d, w.counters(), "noticed_after=%.1fs frozen=%.0fs" % (noticed, FROZEN_S))
        check_delivery(led, d, allow_unacked=False)
        check("command timed out" in w.sq.log_text(), "no 'command timed out' in the log")
        w.wait_pending_zero(20)
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
