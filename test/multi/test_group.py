#!/usr/bin/python3
"""test_group.py - two sentryq processes on one host and one Redis, both with the default consumer
name: each is "<host name>:<listen.port>", so both appear in the group (the old default, the host
name alone, made them one consumer) once each has read an entry. Then the group as /status and /metrics show it, checked
against XINFO CONSUMERS while every entry hangs pending at a stalling upstream: the consumers,
pending per consumer, the oldest entry's age; and all back to 0 once everything is delivered.
Shipped defaults throughout (forward.claim_idle 60 s: no claim happens within the case)."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, free_port, wait_for  # noqa: E402
from sqtest.prom import scrape  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq  # noqa: E402
from sqtest.world import Project, World, default_consumer  # noqa: E402

N = 20


def group_of_status(sq, prj):
    """{consumer: pending} of /status group, and the route's entry (None before the first poll)."""
    g = sq.status()[1]["group"].get(prj.label)
    return (None, None) if g is None else (g["pending"], g)


def test_default_consumers_are_unique_and_the_group_is_shown():
    w = World()
    b = None
    try:
        mock = w.mock("up")
        prj = Project("up", "grp", 41)
        ups = [("up", mock.url, [prj])]
        w.start(ups)
        port_b = free_port()
        b = Sentryq().start(w.config(port_b, ups), port_b)
        names = {default_consumer(w.port), default_consumer(port_b)}
        check(w.status()["consumer"] == default_consumer(w.port), "A's /status consumer %r" % w.status()["consumer"])
        check(b.status()[1]["consumer"] == default_consumer(port_b), "B's /status consumer")
        check(w.status()["role"] == "all", "/status role %r" % w.status()["role"])
        mock.program(default={"stall": 30})  # every forward hangs: entries stay pending where read
        led = Ledger()
        for i in range(N):
            led.post(w.port if i % 2 == 0 else port_b, led.make(prj, "grp", i))
        check(len(led.acked) == N, "acknowledged %d of %d: %s" % (len(led.acked), N, led.statuses()))
        wait_for(lambda: sum(p for p, _ in w.group(prj).values()) == N, 15, "all %d entries pending" % N)
        # A process joins the group with the first entry it reads (Redis 7.0 makes a consumer on a
        # delivery); each read the puts it made itself.
        check(set(w.group(prj)) == names, "group consumers %r, want both defaults %r" % (
            sorted(w.group(prj)), sorted(names)))
        first_ms = int(w.redis.command("XRANGE", w.stream(prj), "-", "+", "COUNT", 1)[0][0].split(b"-")[0])

        # Both processes show what XINFO CONSUMERS says (their poll runs every 2 s).
        want = {n: p for n, (p, _) in w.group(prj).items()}
        for sq in (w.sq, b):
            wait_for(lambda: group_of_status(sq, prj)[0] == want, 10,
                     "/status group pending == XINFO %r (port %d)" % (want, sq.port))
        g = group_of_status(w.sq, prj)[1]
        age = time.time() - first_ms / 1000.0
        check(g["consumers"] == 2, "/status group consumers %r, want 2" % g["consumers"])
        check(0 < g["oldest_pending_s"] <= age + 1 and g["oldest_pending_s"] >= age - 4,
              "/status oldest_pending_s %.2f, the first entry is %.2f s old" % (g["oldest_pending_s"], age))
        sc = scrape(w.port)
        check(sc.value("sentryq_group_consumers", route=prj.label) == 2, "sentryq_group_consumers")
        for n, p in want.items():
            got = sc.value("sentryq_group_pending", route=prj.label, consumer=n)
            check(got == p, "sentryq_group_pending{consumer=%s} %r, XINFO says %d" % (n, got, p))
        oldest = sc.value("sentryq_queue_oldest_pending_seconds", route=prj.label)
        check(age - 4 <= oldest <= age + 1, "sentryq_queue_oldest_pending_seconds %.2f, want ~%.2f" % (oldest, age))
        check(sc.value("sentryq_role_info", role="all") == 1, "sentryq_role_info{role=all}")

        mock.program(default={"status": 200})
        # The hung forwards time out after the shipped forward.timeout (10 s) and are sent again.
        d = w.wait_delivered(led, led.acked, w.settings["fwd_timeout"] + 20)
        summary("multi group", led, d, {}, "consumers=%s" % ",".join(sorted(names)))
        check_delivery(led, d, allow_unacked=False)
        zero = {n: 0 for n in names}
        wait_for(lambda: group_of_status(w.sq, prj)[0] == zero and group_of_status(w.sq, prj)[1]["oldest_pending_s"] == 0,
                 10, "/status group pending all 0 and oldest_pending_s 0 once delivered")
        check(set(w.group(prj)) == names, "after delivery the group is %r" % sorted(w.group(prj)))
    finally:
        if b is not None:
            b.stop(timeout=w.settings["shutdown_timeout"] + 10)
        w.close()


if __name__ == "__main__":
    main(globals())
