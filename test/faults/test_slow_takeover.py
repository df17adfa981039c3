#!/usr/bin/python3
"""test_slow_takeover.py (slow suite) - the takeover of test_shared_redis.py at the shipped
forward.claim_idle (60 s): two sentryq processes share one Redis; relay-a is SIGKILLed while its
forwards hang. relay-b delivers its own entries once its hung forwards time out (forward.timeout,
10 s) and takes over relay-a's only after they have been idle for claim_idle: never sooner, and
at most claim_idle + claim_idle / 2 (the claim scan's period) + slack after relay-a read them.
Nothing acknowledged by either process is lost."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, free_port, wait_for  # noqa: E402
from sqtest.resp import RespClient  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq  # noqa: E402
from sqtest.world import FAULT_SETTINGS, Project, World  # noqa: E402
SLACK = 5.0


def pending_of(redis_port, stream, consumer):
    """{entry id: (idle seconds, deliveries)} of a consumer's pending entries, from XPENDING."""
    c = RespClient(redis_port)
    try:
        rows = c.command("XPENDING", stream, "sentryq", "-", "+", "1000", consumer)
    finally:
        c.close()
    return {r[0].decode(): (r[2] / 1000.0, r[3]) for r in rows}


def entry_eids(redis_port, stream):
    """{entry id: event id} of a stream's entries (the entry field `id`)."""
    c = RespClient(redis_port)
    try:
        rows = c.command("XRANGE", stream, "-", "+")
    finally:
        c.close()
    out = {}
    for rid, fields in rows:
        f = dict(zip(fields[::2], fields[1::2]))
        out[rid.decode()] = f.get(b"id", b"").decode()
    return out


def test_takeover_after_the_shipped_claim_idle():
    w = World()
    b = None
    try:
        mock = w.mock("up")
        prj = Project("up", "shared", 86)
        ups = [("up", mock.url, [prj])]
        w.start(ups, consumer="relay-a")  # the shipped defaults
        s = w.settings
        port_b = free_port()
        b = Sentryq().start(w.config(port_b, ups, consumer="relay-b"), port_b)
        stream = "%sq:up:shared" % FAULT_SETTINGS["prefix"]
        led = Ledger()
        mock.program(default={"stall": 300})  # every forward hangs: entries stay pending where read
        for i in range(20):
            led.post(w.port if i % 2 == 0 else port_b, led.make(prj, "shared", i))
        check(len(led.acked) == 20, "acknowledged %d of 20: %s" % (len(led.acked), led.statuses()))
        wait_for(lambda: mock.stats()["concurrent"] >= 20, 10, "all 20 forwards hanging at the upstream")
        mine = pending_of(w.redis.port, stream, "relay-a")
        check(mine, "relay-a has no pending entries: nothing to take over")
        eids = entry_eids(w.redis.port, stream)
        t_now = time.monotonic()
        a_read = {eids[i]: t_now - idle for i, (idle, _) in mine.items()}  # when relay-a read each one
        b_eids = [e for e in led.acked if e not in a_read]
        w.kill9()
        t_kill = time.monotonic()
        mock.program(default={"status": 200})
        # relay-b's own: its hung forwards time out after forward.timeout, then retried ~1 s later.
        d = w.wait_delivered(led, b_eids, s["fwd_timeout"] + 10)
        b_last = d.last_delivered_at(b_eids) - t_kill
        check(not [e for e in a_read if e in d.ok], "relay-a's entries delivered before claim_idle")
        bound = s["claim_idle"] * 1.5 + SLACK
        d = w.wait_delivered(led, led.acked, bound + 10)
        check_delivery(led, d, allow_unacked=False)
        after = {e: d.delivered_at(e) - t for e, t in a_read.items()}
        early = {e: v for e, v in after.items() if v < s["claim_idle"]}
        check(not early, "%d of relay-a's entries delivered %.1f s after relay-a read them, before claim_idle "
              "(%.0f s)" % (len(early), min(early.values()) if early else 0, s["claim_idle"]))
        late = {e: v for e, v in after.items() if v > bound}
        check(not late, "%d of relay-a's entries delivered %.1f s after relay-a read them (claim_idle %.0f s, "
              "scans every %.0f s: want <= %.0f s)" % (len(late), max(late.values()) if late else 0,
                                                      s["claim_idle"], s["claim_idle"] / 2, bound))
        check("took over" in b.log_text(), "relay-b never logged taking over relay-a's entries")
        summary("shared-redis takeover at claim_idle=%.0fs" % s["claim_idle"], led, d, {},
                "relay_a_entries=%d taken_over_%.1f..%.1fs_after_read (want %.0f..%.0f) relay_b_own_last_%.1fs_"
                "after_kill" % (len(a_read), min(after.values()), max(after.values()), s["claim_idle"], bound,
                                b_last))
    finally:
        if b is not None:
            b.stop(timeout=w.settings["shutdown_timeout"] + 10 if w.settings else 30)
        w.close()


if __name__ == "__main__":
    main(globals())
