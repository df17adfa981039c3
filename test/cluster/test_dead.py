#!/usr/bin/python3
"""test_dead.py - dead letters in a cluster: two routes on different masters and a mirror copy
(queued in its source route's slot) are refused by the upstream (400), so each lands in the
dead-letter stream of its slot ("<prefix>{up:pr}dead"). `sentryq dead list` finds every one of
them across the masters, `dead replay --all` puts each back into the stream it came from (once the
upstream takes them), and they are delivered; the list is then empty and the per-route byte
counters are back to 0. The nodes require a password (redis.password), for the relay and the CLI."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger  # noqa: E402
from sqtest.mock import rec_body  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.redis_cluster import ClusterWorld, route_slot  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import run_cli  # noqa: E402

PER_ROUTE = 20


def dead_list(w):
    cli = run_cli(["-c", w.sq.config_path, "dead", "list", "--json"])
    check(cli.returncode == 0, "dead list: rc %d: %s" % (cli.returncode, cli.stderr))
    return json.loads(cli.stdout)


def test_dead_list_and_replay_across_masters():
    w = ClusterWorld(password="cluster-secret-pw")  # every node's AUTH, the CLI's too
    try:
        owners = {p.name: w.cluster.master_of_slot(route_slot("up", p.name)) for p in w.prjs}
        a = w.prjs[0]
        b = next(p for p in w.prjs if owners[p.name] != owners[a.name])
        src = next(p for p in w.prjs if owners[p.name] not in (owners[a.name], owners[b.name]))
        copy = w.prjs[-1] if w.prjs[-1] not in (a, b, src) else w.prjs[-2]
        w.mirrors[src.name] = [copy.name]
        w.start(max_attempts=1)
        w.mock.program(rules=[{"path_contains": p.api, "responses": [{"status": 400}]} for p in (a, b, copy)])
        led = Ledger()
        eids = []
        for p in (a, b, src):
            for i in range(PER_ROUTE):
                e = led.make(p, "dead", i)
                eids.append(e)
                check(led.post(w.port, e).status == 200, "not accepted")
        want = 3 * PER_ROUTE  # a's, b's and the mirror copies of src's (src itself is delivered)
        wait_for(lambda: w.sq.status()[1]["counters"].get("dead") == want, 30, "%d dead letters" % want)
        w.wait_drained(30)
        listed = dead_list(w)
        routes = sorted({(x["upstream"], x["project"]) for x in listed})
        check(len(listed) == want, "dead list shows %d of %d: %s" % (len(listed), want, routes))
        check(routes == sorted({("up", a.name), ("up", b.name), ("up", copy.name)}), "routes listed: %s" % routes)
        for p, key in ((a, a.name), (b, b.name), (copy, src.name)):  # the copy's is in src's slot
            n = w.cluster.by_port(owners[key]).command("XLEN", "sqc:{up:%s}dead" % key)
            check(n == PER_ROUTE, "sqc:{up:%s}dead holds %d, not %d" % (key, n, PER_ROUTE))
        w.mock.program(rules=[])  # the upstream takes them now
        since = w.mock.count()
        cli = run_cli(["-c", w.sq.config_path, "dead", "replay", "--all"])
        check(cli.returncode == 0 and "replayed %d" % want in cli.stdout,
              "dead replay --all: rc %d: %s %s" % (cli.returncode, cli.stdout, cli.stderr))

        def replayed():
            recs = [r for r in w.mock.requests(since) if r["status"] == 200]
            got = {(r["path"].split("/")[2], e) for r in recs for e in eids if e.encode() in rec_body(r)}
            return len(got) >= want
        wait_for(replayed, 30, "the %d replayed dead letters delivered" % want)
        w.wait_drained(30)
        check(dead_list(w) == [], "dead letters left after the replay")
        total = sum(int(w.cluster.by_port(owners[p.name]).command("GET", "sqc:{up:%s}bytes" % p.name) or 0)
                    for p in w.prjs)
        check(total == 0, "per-route byte counters add up to %d after the replay, not 0" % total)
        print("# SUMMARY cluster dead: dead=%d listed=%d replayed=%d routes=%d masters=%d" % (
            want, len(listed), want, len(routes), len({owners[a.name], owners[b.name], owners[src.name]})), flush=True)
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
