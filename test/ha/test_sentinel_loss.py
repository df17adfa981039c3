#!/usr/bin/python3
"""test_sentinel_loss.py - one of the three sentinels dies: the one sentryq follows for
+switch-master (its /status redis.sentinel). sentryq subscribes at another one, and when the
master is then SIGKILLed under load, the two sentinels left (quorum 2, a majority of 3) still
promote a replica, and sentryq follows within a second of their +switch-master message
(reconnect_max is 5 s here, so waiting out its backoff would be slower). Passwords on the servers and on the
sentinels: AUTH on every connection, and none of them in the log. wait_replicas 1: every
acknowledged event arrives."""

import datetime
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Delivery, Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.redis_ha import HAWorld  # noqa: E402
from sqtest.runner import main  # noqa: E402

RATE = 300
TOTAL = 3000


def test_sentinel_lost_then_failover():
    w = HAWorld(wait_replicas=1, password="ha-master-pw-5b1f", sentinel_password="ha-sentinel-pw-77c2")
    try:
        w.start(reconnect_max=5.0)
        followed = wait_for(lambda: w.redis_status().get("sentinel"), 10, "a sentinel followed")
        victim = next(s for s in w.ha.sentinels if s.addr == followed)
        led = Ledger()
        eids = [led.make(w.prj, "hs", i) for i in range(TOTAL)]
        load = Loader(led, w.port, eids, workers=8, rate=RATE).start()
        wait_for(lambda: load.acked() >= 300, 30, "300 events acknowledged", interval=0.05)
        victim.kill()
        renewed = wait_for(lambda: (w.redis_status().get("sentinel") or None) not in (None, followed) and
                           w.redis_status()["sentinel"], 10, "sentryq to follow another sentinel", interval=0.05)
        old, t_kill = w.ha.kill_master()
        new = w.ha.wait_promoted(old, 30)
        t_promoted = time.monotonic()
        t_followed = w.wait_following(new, 30)
        t_followed_wall = time.time()  # the wall clock, as sentryq's log timestamps are
        load.join(120)
        w.wait_drained(60)
        d = Delivery(led, w.mock.requests())
        summary("ha sentinel-loss wait_replicas=1", led, d, w.sq.status()[1]["counters"],
                "failover_s=%.2f promoted_s=%.2f lost=%d sentinel=%s->%s" % (
                    t_followed - t_kill, t_promoted - t_kill, len(d.missing),
                    followed, renewed))
        check(set(led.statuses()) <= {"200", "503"}, "answers other than 200 and 503: %s" % led.statuses())
        m = re.search(r"^(\S+) \w+ +redis: sentinel \S+: master 'sqha' switched to 127\.0\.0\.1:%d" % new.port,
                      w.sq.log_text(200000), re.M)
        check(m, "no +switch-master message reached sentryq through sentinel %s" % renewed)
        t_switch = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        check(t_followed_wall - t_switch < 1.0, "sentryq reached the new master %.2fs after the +switch-master "
              "message: it waited for its backoff instead" % (t_followed_wall - t_switch))
        check_delivery(led, d, allow_unacked=True)
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
