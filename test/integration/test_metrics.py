#!/usr/bin/python3
"""test_metrics.py - GET /metrics in the Prometheus text format, parsed with Debian's
python3-prometheus-client: every family there, named as Prometheus wants, with the counts of what
the test sent (requests by endpoint and status, bytes, latency, forwards by outcome, dead
letters, queue depth per route, rate limits, upstream states, Redis, the listener); no key,
secret or project name anywhere; the internal listener; the README and the Grafana dashboard
name only families that exist."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id  # noqa: E402
from sqtest.http import request  # noqa: E402
from sqtest.mock import Mock  # noqa: E402
from sqtest.proc import SOURCE_ROOT, check, free_port, wait_for  # noqa: E402
from sqtest.prom import scrape  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import (KEY_VOD, KEY_WEB, SEC_VOD, SEC_WEB, Sentryq, make_config, project_conf,  # noqa: E402
                            run_cli, upstream_conf)

KEY_RL, KEY_HELD, KEY_GONE = "c1c2c3c4c5c6c7c8c9cacbcccdcecfd0", "d1d2d3d4d5d6d7d8d9dadbdcdddedfe0", \
    "e1e2e3e4e5e6e7e8e9eaebecedeeeff0"
PROJECT_NAMES = ("vod_be", "web", "rlproj", "heldq", "goneproj")
FAMILIES = (
    "sentryq_build_info", "sentryq_start_time_seconds", "sentryq_ingest_requests_total",
    "sentryq_ingest_received_bytes_total", "sentryq_ingest_duration_seconds", "sentryq_ingest_enqueued_total",
    "sentryq_ingest_buffered_total", "sentryq_ingest_rejected_total", "sentryq_ingest_backpressure_total",
    "sentryq_ingest_waiting_writes", "sentryq_queue_entries", "sentryq_queue_redis_memory_bytes",
    "sentryq_queue_pending_entries", "sentryq_queue_body_bytes", "sentryq_queue_max_entries",
    "sentryq_queue_max_bytes", "sentryq_forwards_total", "sentryq_forward_retries_total",
    "sentryq_dead_letters_total", "sentryq_upstream_duration_seconds", "sentryq_upstream_in_flight",
    "sentryq_upstream_state", "sentryq_fleet_probing", "sentryq_fleet_sync_errors_total", "sentryq_rate_limits_active", "sentryq_redis_connected",
    "sentryq_redis_reconnects_total", "sentryq_redis_buffer_entries", "sentryq_redis_buffer_bytes",
    "sentryq_redis_buffer_max_bytes", "sentryq_config_reloads_total", "sentryq_http_open_connections",
    "sentryq_http_body_memory_bytes", "sentryq_http_connections_total", "sentryq_http_refused_connections_total",
    "sentryq_http_accept_errors_total", "sentryq_http_bad_framing_total", "sentryq_http_too_large_total",
    "sentryq_http_slow_heads_total", "sentryq_http_slow_bodies_total", "sentryq_http_memory_full_total",
    "sentryq_ready", "sentryq_live")
RULES = [  # the mock's program for the whole suite: one behaviour per project id
    {"path_contains": "/api/20/", "body_contains": "DEADME", "responses": [{"status": 400}]},
    {"path_contains": "/api/30/", "responses": [{"status": 429, "headers": {"Retry-After": "60"}}]},
]

S = {}


UPSTREAM_OF = {"heldq": "slow", "goneproj": "gone"}


def auth(project):
    return "Sentry sentry_key=%s, sentry_version=7, sentry_client=metrics-test/1.0, sentry_secret=%s" % (
        UPSTREAM_OF.get(project, "wow"), project)


def setup_module():
    S["redis"] = Redis().start()
    S["mock"] = Mock().start()
    S["mock"].program(rules=RULES)
    S["port"] = free_port()
    ups = [upstream_conf("wow", S["mock"].url, [project_conf("vod_be", KEY_VOD, 20, SEC_VOD),
                                                project_conf("web", KEY_WEB, 1, SEC_WEB),
                                                project_conf("rlproj", KEY_RL, 30)]),
           upstream_conf("slow", S["mock"].url, [project_conf("heldq", KEY_HELD, 40)]),
           upstream_conf("gone", "http://127.0.0.1:%d" % free_port(), [project_conf("goneproj", KEY_GONE, 50)])]
    S["ups"] = ups
    S["cfg"] = make_config(S["port"], S["redis"].port, ups, buffer_bytes=1048576, outage_grace=0.3)
    S["sq"] = Sentryq().start(S["cfg"], S["port"])


def teardown_module():
    S["sq"].stop()


def m():
    return scrape(S["port"])


def store(project="vod_be", body=None):
    body = body or ('{"event_id":"%s","message":"metrics"}' % new_event_id()).encode()
    return request(S["port"], "POST", "/api/1/store/", [("X-Sentry-Auth", auth(project)),
                                                          ("Content-Type", "application/json")], body), body


def envelope():
    eid = new_event_id()
    item = b'{"message":"metrics envelope"}'
    body = (b'{"event_id":"%s"}\n{"type":"event","length":%d}\n%s\n' % (eid.encode(), len(item), item))
    return request(S["port"], "POST", "/api/1/envelope/?sentry_key=wow&sentry_version=7&sentry_secret=vod_be",
                   [("Content-Type", "application/x-sentry-envelope")], body), body


def delivered(name):
    return m().total("sentryq_forwards_total", upstream=name, outcome="delivered")


# ---------------------------------------------------------------- format

def test_exposition_format_and_names():
    r = request(S["port"], "GET", "/metrics")
    check(r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8",
          "Content-Type %r" % r.header("Content-Type"))
    sc = m()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", sc.text, re.M))
    missing = [f for f in FAMILIES if f not in types]
    check(not missing, "families missing from /metrics: %s" % missing)
    for name, kind in types.items():
        check(name.startswith("sentryq_"), "%s lacks the sentryq_ prefix" % name)
        check((kind == "counter") == name.endswith("_total"), "%s is a %s: _total is for counters only" % (name, kind))
        check(re.search(r"^# HELP %s \S" % re.escape(name), sc.text, re.M), "%s has no HELP" % name)
    for fam in sc.families.values():
        if fam.type == "histogram":
            check(fam.name.endswith("_seconds"), "histogram %s not in seconds" % fam.name)
    check(sc.value("sentryq_ready") == 1 and sc.value("sentryq_live") == 1, "not ready/live at rest")


def test_build_info_and_reloads():
    sc = m()
    version = run_cli(["-V"]).stdout.split()[-1]
    check(sc.value("sentryq_build_info", version=version) == 1, "build_info for %s" % version)
    check(sc.value("sentryq_config_reloads_total", result="success") == 0, "reloads success not 0")
    check(sc.value("sentryq_config_reloads_total", result="failure") == 0, "reloads failure not 0")
    check(abs(sc.value("sentryq_queue_max_entries") - 1000000) < 1, "queue_max_entries")


# ---------------------------------------------------------------- traffic

def test_ingest_counts_match_what_was_sent():
    before = m()
    bodies = []
    for _ in range(5):
        r, body = store()
        check(r.status == 200, "store answered %r" % r)
        bodies.append(body)
    for _ in range(3):
        r, _ = envelope()
        check(r.status == 200, "envelope answered %r" % r)
    for _ in range(2):
        r = request(S["port"], "POST", "/api/1/store/", [("X-Sentry-Auth", "Sentry sentry_version=7")], b"{}")
        check(r.status == 401, "no key answered %r" % r)
    r = request(S["port"], "GET", "/api/1/nope/")
    check(r.status == 404, "unknown endpoint answered %r" % r)
    after = m()

    def delta(name, **labels):
        return after.total(name, **labels) - before.total(name, **labels)
    check(delta("sentryq_ingest_requests_total", endpoint="store", status="2xx") == 5, "store 2xx")
    check(delta("sentryq_ingest_requests_total", endpoint="envelope", status="2xx") == 3, "envelope 2xx")
    check(delta("sentryq_ingest_requests_total", endpoint="store", status="4xx") == 2, "store 4xx")
    check(delta("sentryq_ingest_requests_total", endpoint="unknown", status="4xx") == 1, "unknown 4xx")
    check(delta("sentryq_ingest_requests_total") == 11, "requests in all: %r" % delta("sentryq_ingest_requests_total"))
    check(delta("sentryq_ingest_received_bytes_total", endpoint="store") == sum(map(len, bodies)) + 2 * 2,
          "store bytes moved by %r, sent %d" % (delta("sentryq_ingest_received_bytes_total", endpoint="store"),
                                                sum(map(len, bodies)) + 4))
    check(delta("sentryq_ingest_duration_seconds_count") == 11, "latency observations: %r" %
          delta("sentryq_ingest_duration_seconds_count"))
    check(delta("sentryq_ingest_duration_seconds_bucket", le="+Inf") == 11, "+Inf bucket")
    check(0 < delta("sentryq_ingest_duration_seconds_sum") < 11 * 5, "latency sum %r" %
          delta("sentryq_ingest_duration_seconds_sum"))
    check(delta("sentryq_ingest_enqueued_total") == 8, "enqueued moved by %r" % delta("sentryq_ingest_enqueued_total"))
    check(delta("sentryq_ingest_rejected_total") == 3, "rejected moved by %r" % delta("sentryq_ingest_rejected_total"))
    # all 8 reach the upstream: delivered forwards by upstream, and their latency
    base = before.total("sentryq_forwards_total", upstream="wow", outcome="delivered")
    wait_for(lambda: delivered("wow") - base >= 8, 15, "8 forwards delivered to wow")
    final = m()
    check(final.total("sentryq_forwards_total", upstream="wow", outcome="delivered") - base == 8, "delivered != 8")
    check(final.total("sentryq_upstream_duration_seconds_count", upstream="wow") -
          before.total("sentryq_upstream_duration_seconds_count", upstream="wow") >= 8, "upstream latency count")


def test_dead_letters_by_reason():
    before = m()
    r, _ = store(body=('{"event_id":"%s","message":"DEADME"}' % new_event_id()).encode())
    check(r.status == 200, "answered %r" % r)
    wait_for(lambda: m().value("sentryq_dead_letters_total", reason="permanent") -
             before.value("sentryq_dead_letters_total", reason="permanent") == 1, 15, "a permanent dead letter")
    after = m()
    check(after.value("sentryq_forwards_total", upstream="wow", outcome="permanent") -
          before.value("sentryq_forwards_total", upstream="wow", outcome="permanent") == 1, "permanent outcome")
    for reason in ("max_age", "max_attempts"):
        check(after.value("sentryq_dead_letters_total", reason=reason) == 0, "dead letters %s" % reason)


def test_queue_depth_per_route_and_retries():
    mock = S["mock"]
    mock.program(rules=RULES + [{"path_contains": "/api/40/", "responses": [{"status": 503}]}])
    before = m()
    for _ in range(4):
        r, _ = store("heldq")
        check(r.status == 200, "answered %r" % r)
    wait_for(lambda: m().value("sentryq_queue_entries", route="slow/40") == 4, 15, "4 entries queued on slow/40")
    def retried():
        sc = m()
        return (sc.value("sentryq_forward_retries_total") > before.value("sentryq_forward_retries_total") and
                sc.value("sentryq_forwards_total", upstream="slow", outcome="retry") >= 4)
    wait_for(retried, 15, "every entry answered 503 and sent again")
    sc = m()
    check(sc.value("sentryq_queue_entries", route="wow/20") == 0, "wow/20 not empty")
    check(sc.value("sentryq_queue_pending_entries") >= 4, "pending %r" % sc.value("sentryq_queue_pending_entries"))
    check(sc.value("sentryq_queue_body_bytes") > 0, "no body bytes queued")
    check(sc.value("sentryq_queue_redis_memory_bytes", route="slow/40") > 0, "no Redis memory for slow/40")
    check(sc.value("sentryq_upstream_state", upstream="slow", state="up") == 0, "slow still up after 503s")
    mock.program(rules=RULES)
    wait_for(lambda: m().value("sentryq_queue_entries", route="slow/40") == 0, 20, "slow/40 drained")
    check(m().value("sentryq_forwards_total", upstream="slow", outcome="delivered") == 4, "slow delivered != 4")
    wait_for(lambda: m().value("sentryq_upstream_state", upstream="slow", state="up") == 1, 10, "slow up again")


def test_rate_limits_active():
    before = m()
    r, _ = store("rlproj")
    check(r.status == 200, "answered %r" % r)
    wait_for(lambda: m().value("sentryq_rate_limits_active", route="wow/30") == 1, 15, "a limit in force on wow/30")
    sc = m()
    check(sc.value("sentryq_forwards_total", upstream="wow", outcome="rate_limited") -
          before.value("sentryq_forwards_total", upstream="wow", outcome="rate_limited") == 1, "rate_limited outcome")
    check(sc.value("sentryq_rate_limits_active", route="wow/20") == 0, "wow/20 limited too")
    check(sc.value("sentryq_upstream_state", upstream="wow", state="up") == 1, "a 429 is not an outage")


def test_upstream_states():
    r, _ = store("goneproj")
    check(r.status == 200, "answered %r" % r)
    wait_for(lambda: m().value("sentryq_upstream_state", upstream="gone", state="down") == 1, 15,
             "upstream gone (connection refused) down past forward.outage_grace")
    sc = m()
    check(sc.value("sentryq_forwards_total", upstream="gone", outcome="no_answer") >= 1, "no_answer not counted")
    for up in ("wow", "slow", "gone"):
        states = {s: sc.value("sentryq_upstream_state", upstream=up, state=s) for s in ("up", "down", "probing")}
        check(sorted(states.values()) == [0, 0, 1], "upstream %s states %r: want exactly one" % (up, states))


def test_listener_counters():
    before = m()
    r = request(S["port"], "POST", "/api/1/store/", [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
                b"", chunked=False)
    check(r.status == 400, "ambiguous framing answered %r" % r)
    after = m()
    check(after.value("sentryq_http_bad_framing_total", listener="ingest") -
          before.value("sentryq_http_bad_framing_total", listener="ingest") == 1, "bad_framing")
    check(after.value("sentryq_http_connections_total", listener="ingest") -
          before.value("sentryq_http_connections_total", listener="ingest") == 2, "two connections: the request, the scrape")
    check(after.value("sentryq_http_open_connections", listener="ingest") >= 1, "open connections")
    check(not after.series("sentryq_http_connections_total", listener="metrics"), "no internal listener configured")


def test_redis_gauges_and_the_buffer():
    redis = S["redis"]
    before = m()
    redis.stop()
    try:
        wait_for(lambda: m().value("sentryq_redis_connected") == 0, 15, "redis_connected 0")
        r, body = store()
        check(r.status == 200, "the buffer did not take the request: %r" % r)
        sc = m()
        check(sc.value("sentryq_redis_buffer_entries") == 1, "buffer entries %r" % sc.value("sentryq_redis_buffer_entries"))
        check(sc.value("sentryq_redis_buffer_bytes") > len(body), "buffer bytes %r" % sc.value("sentryq_redis_buffer_bytes"))
        check(sc.value("sentryq_redis_buffer_max_bytes") == 1048576, "buffer max")
        check(sc.value("sentryq_ingest_buffered_total") - before.value("sentryq_ingest_buffered_total") == 1, "buffered")
        check(sc.value("sentryq_ready") == 1, "not ready while the buffer takes requests")
    finally:
        redis.start()
    wait_for(lambda: m().value("sentryq_redis_connected") == 1, 20, "redis_connected 1")
    wait_for(lambda: m().value("sentryq_redis_buffer_entries") == 0, 10, "the buffer drained into Redis")
    check(m().value("sentryq_redis_reconnects_total") - before.value("sentryq_redis_reconnects_total") == 1,
          "reconnects moved by %r" % (m().value("sentryq_redis_reconnects_total") -
                                      before.value("sentryq_redis_reconnects_total")))


# ---------------------------------------------------------------- what it never shows

def test_no_key_secret_or_project_name():
    text = m().text
    secrets = set(S["sq"].secrets) | {KEY_VOD, KEY_WEB, KEY_RL, KEY_HELD, KEY_GONE, SEC_VOD, SEC_WEB}
    for sec in sorted(secrets | set(PROJECT_NAMES)):
        check(not re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(sec), text),
              "/metrics shows a key, secret or project name (%s...)" % sec[:3])
    routes = set(re.findall(r'route="([^"]*)"', text))
    check(routes == {"wow/20", "wow/1", "wow/30", "slow/40", "gone/50"}, "route labels %r" % sorted(routes))


def test_internal_listener_serves_the_admin_endpoints_only():
    port, mport = free_port(), free_port()
    cfg = make_config(port, S["redis"].port, S["ups"], prefix="sqm2:", metrics_port=mport, metrics_on_ingest=False)
    sq = Sentryq().start(cfg, port)
    try:
        r = request(port, "GET", "/metrics")
        check(r.status == 404, "/metrics on the ingest listener with metrics.on_ingest = false: %r" % r)
        sc = scrape(mport)
        check(sc.value("sentryq_http_connections_total", listener="metrics") >= 1, "the internal listener's counters")
        check(sc.series("sentryq_http_connections_total", listener="ingest"), "the ingest listener's counters")
        check(request(mport, "GET", "/api/relay/healthcheck/ready/").status == 200, "ready on the internal listener")
        check(request(mport, "GET", "/status").status == 200, "/status on the internal listener")
        r = request(mport, "POST", "/api/1/store/", [("X-Sentry-Auth", auth("vod_be"))], b"{}")
        check(r.status == 404, "ingest on the internal listener: %r" % r)
        check(request(port, "GET", "/api/relay/healthcheck/ready/").status == 200, "ready on the ingest listener")
    finally:
        sq.stop()


# ---------------------------------------------------------------- docs and the dashboard

def exposed_names():
    """Every name a query may use: each family, and a histogram's _bucket, _sum and _count."""
    text = m().text
    out = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        out.add(name)
        if kind == "histogram":
            out |= {name + "_bucket", name + "_sum", name + "_count"}
    return out


def test_readme_documents_every_family():
    with open(os.path.join(SOURCE_ROOT, "README.md")) as f:
        readme = f.read()
    types = re.findall(r"^# TYPE (\S+) ", m().text, re.M)
    missing = [n for n in types if "`%s" % n not in readme]
    check(not missing, "README.md does not document %s" % missing)


def expressions(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("expr", "definition") and isinstance(v, str):
                yield v
            elif k == "query" and isinstance(v, str):
                yield v
            else:
                yield from expressions(v)
    elif isinstance(node, list):
        for v in node:
            yield from expressions(v)


def test_grafana_dashboard_uses_only_metrics_that_exist():
    with open(os.path.join(SOURCE_ROOT, "etc", "grafana", "sentryq.json")) as f:
        dash = json.load(f)
    exprs = list(expressions(dash))
    used = {n for e in exprs for n in re.findall(r"\bsentryq_[a-z0-9_]+", e)}
    check(len(used) >= 20, "the dashboard queries only %d metrics" % len(used))
    unknown = sorted(used - exposed_names())
    check(not unknown, "the dashboard queries metrics /metrics does not have: %s" % unknown)
    titles = " ".join(p.get("title", "") for p in dash["panels"]).lower()
    for want in ("requests", "queue depth", "forwarding outcomes", "latency", "upstream states", "dead letters"):
        check(want in titles, "no dashboard panel about %s" % want)


if __name__ == "__main__":
    main(globals())
