#!/usr/bin/python3
"""test_failover.py WAIT_REPLICAS - the master is SIGKILLed under load (a paced Loader, 8 SDK
connections); the sentinels (3, quorum 2, down-after 1 s) promote one of the two replicas and
sentryq follows: /status redis is connected to the promoted one. Every answer is 200 or 503.

With wait_replicas 1 every acknowledged (200) event reaches the upstream intact: the WAIT after
each batch means a replica had it before the SDK was answered, and the sentinels promote the most
advanced replica. With 0 the events acknowledged but never delivered are the cost of asynchronous
replication: measured and printed on the SUMMARY line (lost=N), not asserted."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Delivery, Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.redis_ha import HAWorld  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import run_cli  # noqa: E402

WAIT = int(sys.argv[1]) if len(sys.argv) > 1 else 1
RATE = 300        # events per second, paced
TOTAL = 3000      # ~10 s of load
KILL_AFTER = 600  # acknowledged before the master is killed


def test_master_killed_under_load():
    w = HAWorld(wait_replicas=WAIT)
    try:
        w.start()
        first = w.ha.current_master()
        check(w.redis_status().get("address") == "127.0.0.1:%d" % first.port,
              "sentryq is not on the master the sentinels name: %r" % w.redis_status())
        led = Ledger()
        eids = [led.make(w.prj, "ha%d" % WAIT, i) for i in range(TOTAL)]
        load = Loader(led, w.port, eids, workers=8, rate=RATE).start()
        wait_for(lambda: load.acked() >= KILL_AFTER, 30, "%d events acknowledged" % KILL_AFTER, interval=0.05)
        old, t_kill = w.ha.kill_master()
        check(not load.done(), "the load finished before the master was killed")
        new = w.ha.wait_promoted(old, 30)
        t_promoted = time.time()
        t_followed = w.wait_following(new, 30)
        load.join(120)
        w.wait_drained(60)
        d = Delivery(led, w.mock.requests())
        answers = led.statuses()
        after = sum(1 for e in led.acked if led.t_answer[e] > t_followed)
        summary("ha failover wait_replicas=%d" % WAIT, led, d, w.sq.status()[1]["counters"],
                "failover_s=%.2f promoted_s=%.2f lost=%d acked_after_failover=%d unacked_delivered=%d" % (
                    t_followed - t_kill, t_promoted - t_kill, len(d.missing), after, len(d.unacked_delivered)))
        check(set(answers) <= {"200", "503"}, "answers other than 200 and 503: %s" % answers)
        check(after > 0, "nothing acknowledged after sentryq followed the failover: %s" % answers)
        check(w.redis_status()["address"] == "127.0.0.1:%d" % new.port, "sentryq left the promoted master")
        # The CLI tools reach Redis through the same supervisor: they find the promoted master too.
        cli = run_cli(["-c", w.sq.config_path, "dead", "list"])
        check(cli.returncode == 0, "sentryq dead list after the failover: rc %d: %s" % (cli.returncode, cli.stderr))
        if WAIT >= 1:
            check_delivery(led, d, allow_unacked=True)
        else:
            check(not d.corrupt and not d.stray, "corrupt %d, stray %d" % (len(d.corrupt), d.stray))
            print("# wait_replicas 0: %d of %d acknowledged events lost with the master (not asserted)" % (
                len(d.missing), len(led.acked)), flush=True)
    finally:
        w.close()


if __name__ == "__main__":
    del sys.argv[1:]
    main(globals())
