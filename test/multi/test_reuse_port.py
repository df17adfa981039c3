#!/usr/bin/python3
"""test_reuse_port.py - listen.reuse_port = true: two sentryq processes listen on one port (and
each on its own metrics.port). New connections are spread by the kernel: both processes take
requests (counted on their /metrics), the counts add up to what was sent, every event is
delivered, and the default consumer names differ (<host>:<metrics.port>). On SIGTERM a process
closes its socket at once: while it drains, the other takes every connection that follows.
Shipped defaults otherwise."""

import os
import signal
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, free_port, wait_for  # noqa: E402
from sqtest.prom import scrape  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq  # noqa: E402
from sqtest.world import FAULT_SETTINGS, Project, World  # noqa: E402

N = 200
AFTER = 20
PAUSE = 4.0  # seconds the mock holds forwards, so that A is still draining while B takes the rest


def enqueued(port):
    return scrape(port).value("sentryq_ingest_enqueued_total")


def test_two_processes_share_one_port():
    w = World()
    a = b = None
    try:
        mock = w.mock("up")
        prj = Project("up", "reuse", 44)
        ups = [("up", mock.url, [prj])]
        port, ma, mb = free_port(), free_port(), free_port()
        a = Sentryq().start(w.config(port, ups, reuse_port=True, metrics_port=ma), ma)
        b = Sentryq().start(w.config(port, ups, reuse_port=True, metrics_port=mb), mb)
        host = socket.gethostname()
        names = (a.status()[1]["consumer"], b.status()[1]["consumer"])
        check(names == ("%s:%d" % (host, ma), "%s:%d" % (host, mb)), "consumers %r" % (names,))
        led = Ledger()
        for i in range(N):  # one connection per request: each one is a new pick by the kernel
            led.post(port, led.make(prj, "reuse", i))
        check(len(led.acked) == N, "acknowledged %d of %d: %s" % (len(led.acked), N, led.statuses()))
        na, nb = enqueued(ma), enqueued(mb)
        check(na > 0 and nb > 0, "one process took every request: %d / %d" % (na, nb))
        check(na + nb == N, "the processes enqueued %d + %d, %d were sent" % (na, nb, N))
        d = w.wait_delivered(led, led.acked, 20)
        summary("multi reuse_port", led, d, {}, "per_process=%d/%d" % (na, nb))
        check_delivery(led, d, allow_unacked=False)
        wait_for(lambda: set(names) <= set(w.group(prj)), 10, "both consumers in the group")

        # A drains (its forwards held by the paused mock) while SDKs keep connecting: it closed its
        # socket at SIGTERM, so the kernel gives every new connection to B (none gets A's 503).
        mock.pause(PAUSE)
        held = [led.make(prj, "reuse-held", i) for i in range(AFTER)]
        for eid in held:
            led.post(port, eid)
        wait_for(lambda: a.status()[1]["forward"]["in_flight"] > 0, PAUSE / 2, "A has forwards in flight")
        a.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "shutdown: signal" in a.log_text(), 5, "A draining")
        nb = enqueued(mb)
        later = [led.make(prj, "reuse-after", i) for i in range(AFTER)]
        for eid in later:
            led.post(port, eid)
        check(a.alive(), "A finished draining before the requests that follow its SIGTERM were sent")
        check(all(e in led.acked for e in later), "while A drained: %s" % led.statuses())
        check(enqueued(mb) == nb + AFTER, "B took %d of the %d requests sent while A drained" % (
            enqueued(mb) - nb, AFTER))
        check(a.proc.wait(timeout=FAULT_SETTINGS["shutdown_timeout"] + 10) == 0, "A did not exit 0 after draining")
        check_delivery(led, w.wait_delivered(led, led.acked, 20), allow_unacked=False)
    finally:
        for sq in (a, b):
            if sq is not None and sq.alive():
                sq.stop(timeout=FAULT_SETTINGS["shutdown_timeout"] + 10)
        w.close()


if __name__ == "__main__":
    main(globals())
