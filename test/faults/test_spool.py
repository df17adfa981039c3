#!/usr/bin/python3
"""test_spool.py - Redis is away when sentryq is stopped: the requests it had accepted into its
memory buffer are written to redis.spool_file on SIGTERM, after the shipped shutdown_timeout
(10 s) spent waiting for Redis, read back at the next start, and delivered once Redis returns.
Without a spool file the loss is logged with its count."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, tmpdir, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World  # noqa: E402
N = 40


def test_buffer_survives_stop_while_redis_is_away():
    w = World()
    spool = os.path.join(tmpdir("sentryq-spool-"), "sentryq.spool")
    try:
        mock = w.mock("up")
        prj = Project("up", "spoolapp", 82)
        w.start([("up", mock.url, [prj])], buffer_bytes=67108864, redis_extra='spool_file = "%s"; ' % spool)
        led = Ledger()
        w.redis.stop()
        wait_for(lambda: not w.status()["redis"]["connected"], 10, "sentryq sees Redis gone")
        eids = [led.make(prj, "spool", i) for i in range(N)]
        for e in eids:
            led.post(w.port, e)
        check(len(led.acked) == N, "only %d of %d requests answered 200 while Redis was away (statuses %r)" %
              (len(led.acked), N, led.statuses()))
        check(w.status()["queue"]["buffered"] == N, "queue.buffered != %d: %r" % (N, w.status()["queue"]))
        t_stop = time.monotonic()
        rc = w.sq.stop(timeout=w.settings["shutdown_timeout"] + 10)
        stop_took = time.monotonic() - t_stop
        w.killed = True  # stopped on purpose, not a crash
        check(rc == 0, "sentryq exited %s on SIGTERM" % rc)
        # The stop waits shutdown_timeout for Redis to take the buffer, then spools it.
        check(w.settings["shutdown_timeout"] - 0.5 <= stop_took <= w.settings["shutdown_timeout"] + 3,
              "the stop took %.1f s, want about shutdown_timeout (%.0f s)" % (stop_took, w.settings["shutdown_timeout"]))
        check(os.path.exists(spool), "no spool file written at %s" % spool)
        check(os.stat(spool).st_mode & 0o077 == 0, "the spool file (auth headers, bodies) is readable by others: %o" %
              (os.stat(spool).st_mode & 0o777))
        check("written to" in w.sq.log_text(), "the stop did not log the spool")
        w.redis.start()
        w.restart()
        d = w.wait_delivered(led, led.acked, 30)
        summary("spool stop-while-redis-away", led, d, w.counters(), "spooled=%d stop_took=%.1fs" % (N, stop_took))
        check_delivery(led, d, allow_unacked=False)
        check(not os.path.exists(spool), "the spool file is still there after it was read back")
        # The taken-back copy stays on disk until every entry is in Redis, then goes.
        wait_for(lambda: not os.path.exists(spool + ".loaded"), 10, "%s.loaded removed after the drain" % spool)
        w.wait_pending_zero(20)
    finally:
        w.close()


def test_without_spool_file_the_loss_is_counted_in_the_log():
    w = World()
    try:
        mock = w.mock("up")
        prj = Project("up", "lossapp", 83)
        w.start([("up", mock.url, [prj])], buffer_bytes=67108864)
        led = Ledger()
        w.redis.stop()
        wait_for(lambda: not w.status()["redis"]["connected"], 10, "sentryq sees Redis gone")
        for i in range(5):
            led.post(w.port, led.make(prj, "loss", i))
        check(len(led.acked) == 5, "statuses %r" % led.statuses())
        c = w.counters()
        t_stop = time.monotonic()
        w.sq.stop(timeout=w.settings["shutdown_timeout"] + 10)
        stop_took = time.monotonic() - t_stop
        w.killed = True  # stopped on purpose, not a crash
        check("5 buffered entries" in w.sq.log_text() and "lost" in w.sq.log_text(),
              "the loss of 5 buffered entries was not logged")
        # Nothing reaches the upstream (Redis never came back): the loss is the documented one.
        summary("no-spool stop-while-redis-away (loss logged)", led, w.delivery(led), c,
                "lost_by_design=%d stop_took=%.1fs" % (len(led.acked), stop_took))
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
