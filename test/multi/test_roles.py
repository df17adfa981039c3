#!/usr/bin/python3
"""test_roles.py - role = "ingest" + role = "forward" on one Redis deliver everything. The
ingest-only process answers SDKs and queues but never joins the consumer group and never connects
to the upstream (its sockets, read from /proc); the forward-only process has no SDK listener (its
listen.port is not bound), serves health, /status and /metrics on metrics.port, is ready while
connected to Redis and not ready once Redis is gone. Shipped defaults otherwise."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.http import request  # noqa: E402
from sqtest.ledger import Ledger, check_delivery, summary  # noqa: E402
from sqtest.proc import check, free_port, port_open, tcp_peer_ports, wait_for  # noqa: E402
from sqtest.prom import scrape  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq  # noqa: E402
from sqtest.world import Project, Sampler, World  # noqa: E402

N = 60
READY = "/api/relay/healthcheck/ready/"


def test_ingest_only_and_forward_only_deliver_everything():
    w = World()
    f = None
    try:
        mock = w.mock("up")
        prj = Project("up", "roles", 43)
        ups = [("up", mock.url, [prj])]
        w.start(ups, role="ingest")
        fwd_listen, fwd_metrics = free_port(), free_port()
        f = Sentryq().start(w.config(fwd_listen, ups, role="forward", metrics_port=fwd_metrics), fwd_metrics)
        st_i, st_f = w.status(), f.status()[1]
        check(st_i["role"] == "ingest" and st_f["role"] == "forward", "roles %r / %r" % (st_i["role"], st_f["role"]))
        check(not port_open(fwd_listen), "the forward-only process listens on its listen.port %d" % fwd_listen)
        check(request(fwd_metrics, "GET", READY).status == 200, "forward-only not ready with Redis connected")
        check(scrape(fwd_metrics).value("sentryq_role_info", role="forward") == 1, "sentryq_role_info{role=forward}")
        check(scrape(w.port).value("sentryq_role_info", role="ingest") == 1, "sentryq_role_info{role=ingest}")

        peers_i = Sampler(lambda: tcp_peer_ports(w.sq.proc.pid), interval=0.05, limit=60).start()
        peers_f = Sampler(lambda: tcp_peer_ports(f.proc.pid), interval=0.05, limit=60).start()
        # The mock holds the first forwards for a while, so that the sampler sees the forwarder's
        # upstream connections open (a positive control of the /proc sampling).
        mock.pause(1.5)
        led = Ledger()
        for i in range(N):
            led.post(w.port, led.make(prj, "roles", i))
        check(len(led.acked) == N, "acknowledged %d of %d: %s" % (len(led.acked), N, led.statuses()))
        d = w.wait_delivered(led, led.acked, 20)
        conn_i = set().union(*[p for _, p in peers_i.stop()])
        conn_f = set().union(*[p for _, p in peers_f.stop()])
        summary("multi roles", led, d, {}, "ingest_peers=%s forward_peers=%s" % (sorted(conn_i), sorted(conn_f)))
        check_delivery(led, d, allow_unacked=False)
        check(mock.port not in conn_i, "the ingest-only process connected to the upstream (port %d)" % mock.port)
        check(mock.port in conn_f, "the forward-only process was never seen connected to the upstream")
        check(w.redis.port in conn_i and w.redis.port in conn_f, "both processes are connected to Redis")
        group = w.group(prj)
        check(list(group) == [st_f["consumer"]], "group consumers %r, want only the forwarder %r" % (
            sorted(group), st_f["consumer"]))
        check(w.status()["forward"]["upstreams"] == {}, "the ingest-only /status shows upstreams")
        check(scrape(w.port).series("sentryq_forwards_total") == [], "the ingest-only /metrics has forwards")

        w.redis.kill()  # forward-only readiness is Redis: not ready without it
        wait_for(lambda: request(fwd_metrics, "GET", READY).status == 503, 15, "forward-only ready 503 without Redis")
        check(f.status()[1]["health"]["reason"] == "redis_down", "/status health %r" % f.status()[1]["health"])
    finally:
        if f is not None:
            f.stop(timeout=w.settings["shutdown_timeout"] + 10)
        w.close()


if __name__ == "__main__":
    main(globals())
