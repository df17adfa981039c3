#!/usr/bin/python3
"""test_redis_frozen.py - redis-server stops answering without closing its socket (SIGSTOP, as a
hung or swapping Redis does) for 8 s, at the shipped defaults. hiredis 0.14 has no timeout of its
own: sentryq must notice after redis.timeout (5 s), drop the connection, keep accepting into its
memory buffer (redis.buffer_bytes, 64 MiB), and once Redis answers again (SIGCONT) reconnect
(backoff up to redis.reconnect_max, 5 s) and deliver everything it acknowledged."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World  # noqa: E402
FROZEN_S = 8.0


def test_unanswered_commands_time_out():
    w = World()
    try:
        mock = w.mock("up")
        prj = Project("up", "frozenapp", 84)
        w.start([("up", mock.url, [prj])])  # the shipped defaults
        s = w.settings
        check(FROZEN_S > s["redis_timeout"] + 2, "the freeze must outlast redis.timeout")
        led = Ledger()
        for i in range(10):
            led.send(w.port, prj, "before", i)
        w.redis.proc.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            # A put now gets no answer: the watchdog must give up on the connection.
            for i in range(10):
                led.send(w.port, prj, "frozen", i, timeout=10.0)
            wait_for(lambda: not w.status()["redis"]["connected"], s["redis_timeout"] + 1.5,
                     "/status redis.connected false within redis.timeout + slack", interval=0.05)
            noticed = time.monotonic() - t0
            check(noticed >= s["redis_timeout"] - 0.5, "Redis given up on after %.1f s, before redis.timeout "
                  "(%.0f s)" % (noticed, s["redis_timeout"]))
            check(w.status()["queue"]["buffered"] > 0 or len(led.acked) == 20,
                  "nothing buffered while Redis was frozen: %r" % w.status()["queue"])
            time.sleep(max(0.0, FROZEN_S - (time.monotonic() - t0)))  # the scenario: Redis stays frozen
        finally:
            w.redis.proc.send_signal(signal.SIGCONT)
            t_thaw = time.monotonic()
        check(len(led.acked) == 20, "acknowledged %d of 20: %s" % (len(led.acked), led.statuses()))
        d = w.wait_delivered(led, led.acked, 30)
        took = d.last_delivered_at(led.acked) - t_thaw
        summary("redis-frozen", led, d, w.counters(), "noticed_after=%.1fs frozen=%.0fs "
                "delivered_last_%.2fs_after_thaw" % (noticed, FROZEN_S, took))
        check_delivery(led, d, allow_unacked=False)
        # Reconnect attempts back off up to redis.reconnect_max; one in progress at the thaw is answered.
        check(took <= s["reconnect_max"] + 2.0, "the last event was delivered %.1f s after Redis answered again "
              "(reconnect_max %.0f s)" % (took, s["reconnect_max"]))
        check("command timed out" in w.sq.log_text(), "no 'command timed out' in the log")
        w.wait_pending_zero(20)
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
