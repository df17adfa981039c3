#!/usr/bin/python3
"""test_reload.py - SIGHUP re-reads the config file while the relay runs, at the shipped defaults of
etc/sentryq.conf: a project added by a reload is served and delivered; a broken file is refused
(the log names file:line) and the running routes keep serving; a project removed while its
upstream is down keeps its 5 queued entries, delivered with the credentials they were queued under
once the upstream is back (nothing dead-lettered); 50 reloads under a steady load lose no event;
a project whose credentials change sends its not yet delivered entries with the new ones; a
restart-only key is logged as needing a restart and its running value stays."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.ledger import Ledger, Loader, check_delivery, summary  # noqa: E402
from sqtest.mock import rec_header  # noqa: E402
from sqtest.proc import check, wait_for  # noqa: E402
from sqtest.prom import scrape  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import Project, World  # noqa: E402


def reloads(w, result):
    return scrape(w.port).value("sentryq_config_reloads_total", result=result)


def auth_key(rec):
    """The sentry_key of a forwarded request's X-Sentry-Auth (the carrier the Ledger's SDK uses)."""
    v = (rec_header(rec, "X-Sentry-Auth") or [""])[0]
    m = re.search(r"sentry_key=([^,\s]+)", v)
    return m.group(1) if m else None


def log_has(w, text, timeout=15):
    wait_for(lambda: text in w.sq.log_text(limit=10 ** 7), timeout, "%r in the log" % text)


def test_add_a_project_by_reload():
    w = World()
    try:
        mock = w.mock("up")
        a, b = Project("up", "alpha", 41), Project("up", "beta", 42, secret="beta-real-secret-0042")
        w.start([("up", mock.url, [a])])
        led = Ledger()
        _, r = led.send(w.port, b, "before", 0)
        check(r.status == 403, "a project not yet configured: %d, not 403" % r.status)
        check(w.reload([("up", mock.url, [a, b])]) == "applied", "the reload was refused")
        log_has(w, "routes 1 added, 0 removed, 0 changed, 1 unchanged")
        eids = [led.send(w.port, b, "added", i)[0] for i in range(5)] + [led.send(w.port, a, "kept", 0)[0]]
        check(set(eids) <= led.acked, "events not acknowledged after the reload: %s" % led.statuses())
        d = w.wait_delivered(led, eids, 30)
        for e in eids[:5]:
            rec = d.attempts[e][-1]
            check(rec["path"].startswith("/api/42/"), "the added project's event went to %s" % rec["path"])
            check(auth_key(rec) == b.key, "the added project's event was sent with another key")
        check_delivery(led, d)
        check(reloads(w, "success") == 1 and reloads(w, "failure") == 0, "sentryq_config_reloads_total")
    finally:
        w.close()


def test_broken_file_keeps_the_running_config():
    w = World()
    try:
        mock = w.mock("up")
        a = Project("up", "alpha", 51)
        w.start([("up", mock.url, [a])])
        good = w.cfg
        lines = good.splitlines()
        bad_line = len(lines) + 1
        check(w.sq.reload(good + "listen = { port = ;\n") == "refused", "a broken file was applied")
        log_has(w, "%s:%d:" % (w.sq.config_path, bad_line))
        # A file that parses but does not validate (a project id of 0) is refused the same way.
        bad = good.replace("id = 51;", "id = 0;")
        check(bad != good, "test config has no 'id = 51;'")
        check(w.sq.reload(bad) == "refused", "an invalid project id was applied")
        log_has(w, "projects[0].id")
        led = Ledger()
        eids = [led.send(w.port, a, "after-bad", i)[0] for i in range(5)]
        check(set(eids) <= led.acked, "the running routes stopped serving: %s" % led.statuses())
        check_delivery(led, w.wait_delivered(led, eids, 30))
        check(reloads(w, "failure") == 2 and reloads(w, "success") == 0, "sentryq_config_reloads_total")
        w.sq.write_config(good)  # the harness stops it with a valid file in place
    finally:
        w.close()


def test_removed_project_delivers_its_queue_with_old_credentials():
    w = World()
    try:
        keep_mock, gone_mock = w.mock("keep"), w.mock("gone")
        a = Project("keep", "alpha", 61)
        p = Project("gone", "vanishing", 62, secret="vanishing-real-secret-62")
        ups = [("keep", keep_mock.url, [a]), ("gone", gone_mock.url, [p])]
        w.start(ups)
        gone_mock.program(default={"status": 503})  # its upstream is down
        led = Ledger()
        eids = [led.send(w.port, p, "queued", i)[0] for i in range(5)]
        check(set(eids) <= led.acked, "5 events not queued: %s" % led.statuses())
        wait_for(lambda: all(e in w.delivery(led).attempts for e in eids), 15, "5 attempts answered 503")
        # The reload removes the project, and with it its upstream.
        check(w.reload([("keep", keep_mock.url, [a])]) == "applied", "the reload was refused")
        log_has(w, "routes 0 added, 1 removed")
        log_has(w, "removed by the reload: its queued entries are still delivered")
        _, r = led.send(w.port, p, "after-removal", 0)
        check(r.status == 403, "the removed project still takes events: %d" % r.status)
        time.sleep(3)  # the upstream stays down a while after the reload (an outage, not a wait for sentryq)
        gone_mock.program(default={"status": 200})  # back
        d = w.wait_delivered(led, eids, 60)
        for e in eids:
            rec = [x for x in d.attempts[e] if 200 <= x["status"] < 300][0]
            check(rec["path"].startswith("/api/62/"), "a removed project's entry went to %s" % rec["path"])
            check(auth_key(rec) == p.key, "a removed project's entry was sent with another key")
            check("sentry_secret=%s" % p.secret in (rec_header(rec, "X-Sentry-Auth") or [""])[0],
                  "a removed project's entry was sent without its real secret")
        check(w.counters().get("dead", 0) == 0, "entries were dead-lettered: %s" % w.counters())
        log_has(w, "(removed by a reload) is empty: no longer read", timeout=15)
        check(w.redis.command("XLEN", w.stream(p)) == 0, "the removed project's stream was dropped with entries")
        summary("reload removed-project", led, d, w.counters())
    finally:
        w.close()


def test_50_reloads_under_load():
    w = World()
    try:
        mock = w.mock("up")
        a, b = Project("up", "alpha", 71), Project("up", "beta", 72)
        c = Project("up", "gamma", 73)
        w.start([("up", mock.url, [a, b])])
        led = Ledger()
        eids = [led.make(a if i % 2 else b, "load", i) for i in range(3000)]
        loader = Loader(led, w.port, eids, workers=4, rate=200).start()
        results = []
        for i in range(50):
            # Every other reload adds a project; every fourth gives the upstream another pool size,
            # which is a new upstream object while requests are in flight on the old one.
            prjs = [a, b, c] if i % 2 == 0 else [a, b]
            results.append(w.reload([("up", mock.url, prjs)],
                                    max_connections=8 if i % 4 == 0 else 16))
            time.sleep(0.1)  # pacing the reloads over ~6 s of load, not a synchronisation
        loader.stop()
        loader.join(30)
        check(results.count("applied") == 50, "reloads refused: %s" % results)
        sent = loader.attempted
        acked = [e for e in sent if e in led.acked]
        check(len(acked) == len(sent), "%d of %d events not acknowledged during the reloads: %s" % (
            len(sent) - len(acked), len(sent), led.statuses()))
        d = w.wait_delivered(led, acked, 60)
        summary("reload 50-under-load", led, d, w.counters(), "reloads=50")
        check_delivery(led, d)
        check(len(sent) >= 500, "the load was too thin to mean anything: %d events" % len(sent))
        check(reloads(w, "success") == 50, "sentryq_config_reloads_total success != 50")
        check(w.sq.alive(), "sentryq died")
    finally:
        w.close()


def test_changed_credentials_and_restart_only_keys():
    w = World()
    try:
        mock = w.mock("up")
        a = Project("up", "alpha", 81)
        w.start([("up", mock.url, [a])])
        mock.program(rules=[{"path_contains": "/api/81/", "responses": [{"status": 503}]}], default={"status": 200})
        led = Ledger()
        eids = [led.send(w.port, a, "old-key", i)[0] for i in range(3)]
        check(set(eids) <= led.acked, "not queued: %s" % led.statuses())
        wait_for(lambda: all(e in w.delivery(led).attempts for e in eids), 15, "3 attempts answered 503")
        old_key = a.key
        a.key = "0123456789abcdef0123456789abcd81"
        port = w.port
        # listen.port and redis.prefix cannot change live: named in the log, the running ones stay.
        text = w.config(port, [("up", mock.url, [a])]).replace("port = %d;" % port, "port = %d;" % (port + 1), 1)
        text = text.replace('prefix = "%s";' % w.prefix, 'prefix = "sqother:";')
        check(w.sq.reload(text) == "applied", "the reload was refused")
        log_has(w, "reload: listen.port changed: it needs a restart; the running value stays in effect")
        log_has(w, "reload: redis.prefix changed: it needs a restart")
        log_has(w, "routes 0 added, 0 removed, 1 changed")
        mock.program(default={"status": 200})
        d = w.wait_delivered(led, eids, 30)
        for e in eids:
            rec = [x for x in d.attempts[e] if 200 <= x["status"] < 300][0]
            check(auth_key(rec) == a.key, "an entry not yet delivered went with the old key")
            check(auth_key(rec) != old_key, "old key")
        more = [led.send(port, a, "new-key", i)[0] for i in range(3)]  # still the old port
        check(set(more) <= led.acked, "the old listen.port stopped serving: %s" % led.statuses())
        d = w.wait_delivered(led, more, 30)
        check(all(auth_key(d.attempts[e][-1]) == a.key for e in more), "new entries without the new key")
        wait_for(lambda: w.xlen(a) == 0, 15, "the stream of the running prefix acked empty")
        check(not w.redis.command("KEYS", "sqother:*"), "the new redis.prefix was used live")
        w.sq.write_config(w.config(port, [("up", mock.url, [a])]))
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
