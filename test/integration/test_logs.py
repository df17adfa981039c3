#!/usr/bin/python3
"""test_logs.py - log.format = "json": every line one object with ts, level, msg and the event's
fields (dead letters with route/reason/status, upstream state changes with upstream/state), no
key, secret or project name (process_health parses every line); the periodic stats line and its
per-upstream counts; the text format's key=value fields; log.stats_period = 0; the deprecated
top-level log_level; the warning for a config file others can read."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id  # noqa: E402
from sqtest.http import request  # noqa: E402
from sqtest.mock import Mock  # noqa: E402
from sqtest.proc import check, free_port, wait_for  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import (AUTH_VOD, Sentryq, make_config, standard_upstreams, status_counters)  # noqa: E402

AUTH_WEB = AUTH_VOD.replace("sentry_secret=vod_be", "sentry_secret=web")
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
DEAD_RULE = {"path_contains": "/api/20/", "body_contains": "DEADME", "responses": [{"status": 400}]}

S = {}


def setup_module():
    S["redis"] = Redis().start()
    S["mock"] = Mock().start()


def start(extra="", config_mode=0o600, **settings):
    S["mock"].reset()
    S["redis"].command("FLUSHALL")
    port = free_port()
    cfg = make_config(port, S["redis"].port, standard_upstreams(S["mock"].url), extra=extra, **settings)
    return Sentryq().start(cfg, port, config_mode=config_mode)


def post(port, auth=AUTH_VOD, message="logs"):
    body = ('{"event_id":"%s","message":"%s"}' % (new_event_id(), message)).encode()
    return request(port, "POST", "/api/1/store/", [("X-Sentry-Auth", auth), ("Content-Type", "application/json")], body)


def stats_sum(lines, field, upstream="wow"):
    return sum(ln.get(field, 0) for ln in lines if ln.get("upstream") == upstream and ln["msg"].startswith("stats: upstream"))


def test_json_lines_carry_the_events_fields():
    mock = S["mock"]
    sq = start(log_level="debug", log_format="json", stats_period=0.3)
    try:
        mock.program(rules=[DEAD_RULE, {"path_contains": "/api/1/", "responses": [{"status": 503, "count": 2},
                                                                                 {"status": 200}]}])
        for _ in range(3):
            check(post(sq.port).status == 200, "not accepted")
        check(post(sq.port, message="DEADME").status == 200, "not accepted")
        check(post(sq.port, auth=AUTH_WEB).status == 200, "not accepted")
        check(request(sq.port, "POST", "/api/1/store/", [("X-Sentry-Auth", "Sentry sentry_version=7")], b"{}").status
              == 401, "no key accepted")
        wait_for(lambda: status_counters(sq)["forwarded"] == 4 and status_counters(sq)["dead"] == 1, 20,
                 "4 forwarded, 1 dead letter")
        # the stats lines add up to what was forwarded and what failed (two 503s, one 400)
        wait_for(lambda: stats_sum(sq.json_log(), "forwarded") == 4 and stats_sum(sq.json_log(), "failed") == 3, 10,
                 "stats lines for upstream wow adding up to 4 forwarded, 3 failed")
    finally:
        sq.stop()
    lines = sq.json_log()
    for ln in lines:
        check(TS.match(ln["ts"]) and ln["level"] in ("debug", "info", "warn", "error"), "bad ts or level: %r" % ln)
    dead = [ln for ln in lines if "dead-lettered" in ln["msg"]]
    check(len(dead) == 1, "%d dead-letter lines" % len(dead))
    check(dead[0]["level"] == "warn" and dead[0]["route"] == "wow/20" and dead[0]["reason"] == "permanent" and
          dead[0]["status"] == 400 and dead[0]["attempts"] == 1, "dead-letter line fields: %r" % dead[0])
    ups = [(ln["upstream"], ln["state"]) for ln in lines if "state" in ln and not ln["msg"].startswith("stats:")]
    check(("wow", "interrupted") in ups and ("wow", "up") in ups, "upstream state lines: %r" % ups)
    stats = [ln for ln in lines if ln["msg"].startswith("stats: ") and "requests_per_s" in ln]
    check(stats, "no stats line")
    for k in ("requests_per_s", "forwards_per_s", "queue_entries", "queue_bytes", "buffered", "dead_letters",
              "dead_letters_total"):
        check(all(isinstance(ln.get(k), (int, float)) for ln in stats), "stats lines lack a number %s" % k)
    check(max(ln["dead_letters_total"] for ln in stats) == 1, "dead_letters_total in the stats lines")
    check(sum(ln["dead_letters"] for ln in stats) == 1, "dead letters per period do not add up to 1")
    check(any(ln["requests_per_s"] > 0 for ln in stats), "requests_per_s never above 0")
    check(any(ln["level"] == "debug" for ln in lines), "log.level debug wrote no debug line")


def test_text_lines_have_key_value_fields():
    mock = S["mock"]
    sq = start()
    try:
        mock.program(rules=[DEAD_RULE])
        check(post(sq.port, message="DEADME").status == 200, "not accepted")
        wait_for(lambda: status_counters(sq)["dead"] == 1, 15, "a dead letter")
    finally:
        sq.stop()
    text = sq.log_text()
    line = next((ln for ln in text.splitlines() if "dead-lettered" in ln), "")
    check(re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z warn  forward: wow/20 \S+ dead-lettered: permanent", line),
          "text dead-letter line: %r" % line)
    check(" route=wow/20 " in line and " reason=permanent " in line and " status=400" in line,
          "fields missing from %r" % line)
    check(not text.lstrip().startswith("{"), "the default format is not text")


def test_stats_period_zero_writes_no_stats_line():
    sq = start(log_format="json", stats_period=0.0)
    try:
        for _ in range(5):
            check(post(sq.port).status == 200, "not accepted")
        wait_for(lambda: status_counters(sq)["forwarded"] == 5, 15, "5 forwarded")
    finally:
        sq.stop()
    lines = sq.json_log()
    check(not [ln for ln in lines if ln["msg"].startswith("stats:")], "stats lines with log.stats_period = 0")
    check(len(lines) < 50, "%d lines for 5 events" % len(lines))


def test_deprecated_log_level_still_works():
    sq = start(extra='log_level = "debug";\n')
    try:
        check(request(sq.port, "POST", "/api/1/store/", [("X-Sentry-Auth", "Sentry sentry_version=7")], b"{}").status
              == 401, "no key accepted")
        wait_for(lambda: "ingest: answered 401" in sq.log_text(), 5, "a debug line from the deprecated log_level")
    finally:
        sq.stop()
    check(re.search(r"warn .*deprecated top-level log_level", sq.log_text()), "no deprecation warning")


def test_config_readable_by_others_is_warned_about():
    sq = start(config_mode=0o644)
    sq.stop()
    check(re.search(r"warn  config: \S+ is readable by every user", sq.log_text()),
          "no warning for a world-readable config")
    sq = start(config_mode=0o640)
    sq.stop()
    check("readable by every user" not in sq.log_text(), "warned about a config others cannot read")


if __name__ == "__main__":
    main(globals())
