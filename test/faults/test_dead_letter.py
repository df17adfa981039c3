#!/usr/bin/python3
"""test_dead_letter.py - fault case 3: the upstream answers 400 for project "poison". Its event is
attempted exactly once and moved to the dead letters (reason permanent, status 400) while the other
project flows; `dead list` shows it; after the upstream is fixed `dead replay --all` delivers it
intact and the dead-letter stream is empty."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, check_delivery, eid_of, summary  # noqa: E402
from sqtest.mock import rec_body  # noqa: E402
from sqtest.proc import TestFailure, check, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import run_cli  # noqa: E402
from sqtest.world import Project, World  # noqa: E402


def dead_list(w, as_json=True):
    args = ["-c", w.sq.config_path, "dead", "list"] + (["--json"] if as_json else [])
    p = run_cli(args)
    check(p.returncode == 0, "dead list exited %d: %s" % (p.returncode, p.stderr.strip()[:300]))
    if not as_json:
        return p.stdout
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise TestFailure("dead list --json printed no JSON: %r" % p.stdout[:300])


def test_400_dead_letter_then_replay():
    w = World()
    try:
        mock = w.mock("up")
        poison, good = Project("up", "poison", 41), Project("up", "good", 42)
        mock.program(rules=[{"path_contains": poison.api, "responses": [{"status": 400}]}])
        w.start([("up", mock.url, [poison, good])])
        led = Ledger()
        bad_eid, r = led.send(w.port, poison, "poison", 0)
        check(r is not None and r.status == 200, "poison event answered %r" % r)
        for i in range(10):
            led.send(w.port, good, "good", i)
        check(len(led.acked) == 11, "acknowledged %d of 11: %s" % (len(led.acked), led.statuses()))
        wait_for(lambda: w.counters().get("dead") == 1, 10, "counters.dead == 1", interval=0.1)
        d = w.wait_delivered(led, led.of(good), 10)
        # The scenario: a window of 2.5 x retry_initial (shipped 1 s) in which a retry would show.
        time.sleep(2.5 * w.settings["retry_initial"])
        tries = [x for x in mock.requests() if poison.api in x["path"]]
        check(len(tries) == 1, "%d upstream attempts for the 400 event, want exactly 1 (statuses %s)" % (
            len(tries), [x["status"] for x in tries]))
        c = w.counters()
        check(c.get("dead") == 1 and c.get("dead_permanent") == 1,
              "counters dead=%r dead_permanent=%r, want 1 and 1" % (c.get("dead"), c.get("dead_permanent")))
        lst = dead_list(w)
        check(isinstance(lst, list) and len(lst) == 1, "dead list --json: %r" % (lst,))
        e = lst[0]
        check(e.get("status") == 400 and e.get("reason") == "permanent",
              "dead letter status=%r reason=%r, want 400 permanent" % (e.get("status"), e.get("reason")))
        check(e.get("event_id") == bad_eid and e.get("project") == "poison" and e.get("upstream") == "up",
              "dead letter names %r/%r event %r" % (e.get("upstream"), e.get("project"), e.get("event_id")))
        check(e.get("attempts") == 1, "dead letter attempts=%r, want 1" % e.get("attempts"))
        txt = dead_list(w, as_json=False)
        check(txt.strip().splitlines()[-1] == "1 dead letters", "dead list text ends %r" % txt[-80:])
        mock.program(rules=[])  # the upstream is fixed
        p = run_cli(["-c", w.sq.config_path, "dead", "replay", "--all"])
        check(p.returncode == 0 and "replayed 1" in p.stdout,
              "dead replay --all: exit %d, out %r, err %r" % (p.returncode, p.stdout, p.stderr[:300]))
        d = w.wait_delivered(led, led.acked, 15)
        check_delivery(led, d, allow_unacked=False)
        check(dead_list(w) == [], "dead list not empty after replay: %r" % dead_list(w))
        w.wait_pending_zero()
        summary("case3 400-dead-replay", led, d, w.counters(),
                "poison_attempts_before_replay=%d" % len(tries))
        w.check_gauges()
    finally:
        w.close()


def test_max_attempts_counts_real_sends_only():
    """forward.max_attempts = 3 against an upstream that always answers 503 for one project, at the
    shipped timings: each event reaches the upstream exactly 3 times (pending-list rescans of
    entries still in flight must not count as attempts), then moves to the dead letters as
    max_attempts; another project keeps flowing."""
    w = World()
    try:
        mock = w.mock("up")
        flaky, good = Project("up", "flaky", 43), Project("up", "steady", 44)
        mock.program(rules=[{"path_contains": flaky.api, "responses": [{"status": 503}]}])
        w.start([("up", mock.url, [flaky, good])], max_attempts=3)  # max_attempts is not a timing
        led = Ledger()
        bad = [led.send(w.port, flaky, "flaky", i)[0] for i in range(4)]
        for i in range(10):
            led.send(w.port, good, "steady", i)
        wait_for(lambda: w.counters().get("dead_max_attempts") == 4, 20, "4 entries dead as max_attempts",
                 interval=0.1)
        d = w.wait_delivered(led, led.of(good), 10)
        tries, times = {}, {}
        for x in mock.requests():
            if flaky.api in x["path"]:
                eid = eid_of(rec_body(x))
                tries[eid] = tries.get(eid, 0) + 1
                times.setdefault(eid, []).append(x["t"])
        gaps = sorted(round(b - a, 2) for ts in times.values() for a, b in zip(ts, ts[1:]))
        check(all(tries.get(e) == 3 for e in bad), "upstream attempts per event %r, want 3 each" % tries)
        lst = dead_list(w)
        check(sorted(x.get("attempts") for x in lst) == [3, 3, 3, 3] and
              all(x.get("reason") == "max_attempts" for x in lst), "dead letters %r" % lst)
        summary("max_attempts", led, d, w.counters(), "attempts_per_event=%s gaps_between_attempts_s=%s" % (
            sorted(tries.values()), ",".join("%.2f" % g for g in gaps)))
        w.check_gauges()
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
