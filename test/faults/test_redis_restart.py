#!/usr/bin/python3
"""test_redis_restart.py - fault case 7: redis-server (appendonly yes, appendfsync always) is stopped
for 2 s and started again on the same port and dir while SDKs post at a steady rate. sentryq buffers
in memory meanwhile (redis.buffer_bytes = 64 MiB): every request answered 200 - before, during or
after the outage - reaches the upstream intact. A 503 (buffer full) is a refusal, not counted as
acknowledged; any other answer is a failure."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World  # noqa: E402
RATE = 300      # events per second, paced
TOTAL = 1800    # ~6 s of load
DOWN_S = 2.0


def test_redis_restart_under_load():
    w = World()
    try:
        mock = w.mock("up")
        prj = Project("up", "app", 81)
        w.start([("up", mock.url, [prj])], buffer_bytes=67108864)
        led = Ledger()
        eids = [led.make(prj, "c7", i) for i in range(TOTAL)]
        load = Loader(led, w.port, eids, workers=6, rate=RATE).start()
        wait_for(lambda: load.acked() >= RATE, 20, "%d events acknowledged before the outage" % RATE,
                 interval=0.05)
        t_down0 = time.monotonic()
        w.redis.stop()
        t_down = time.monotonic()
        check(not load.done(), "load finished before Redis went down")
        time.sleep(DOWN_S / 2)  # the scenario: Redis stays away for DOWN_S seconds
        st_mid = w.status()
        time.sleep(DOWN_S / 2)
        w.redis.start()
        t_up = time.monotonic()
        load.join(60)
        during = [e for e in led.answer if t_down <= led.t_answer[e] <= t_up]
        ok_during = sum(1 for e in during if e in led.acked)
        refused = sum(1 for e in during if led.answer[e] == 503)
        other = {e: led.answer[e] for e in led.answer if led.answer[e] not in (200, 503)}
        print("# during the outage: %d answers, %d x 200, %d x 503; /status then: queue=%r status=%r" % (
            len(during), ok_during, refused, st_mid.get("queue"), st_mid.get("status")))
        d = w.wait_delivered(led, led.acked, 60)
        summary("case7 redis-restart", led, d, w.counters(),
                "outage=%.1fs acked_during=%d refused_503=%d stop_took=%.2fs" % (
                      t_up - t_down0, ok_during, refused, t_down - t_down0))
        check_delivery(led, d, allow_unacked=False)
        check(not other, "%d answers neither 200 nor 503 (e.g. %s)" % (len(other), list(other.items())[:3]))
        check(ok_during > 0, "no request answered 200 while Redis was away (buffer_bytes 64 MiB): %d x 503" %
              refused)
        check(st_mid.get("queue", {}).get("buffered", 0) > 0,
              "/status queue.buffered 0 while Redis was away: %r" % st_mid.get("queue"))
        w.wait_pending_zero(20)
        wait_for(lambda: w.status()["queue"]["buffered"] == 0, 10, "queue.buffered 0 after the drain")
        w.check_gauges()
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
