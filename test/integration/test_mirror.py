#!/usr/bin/python3
"""test_mirror.py - mirror routes (issue 13): project vod_be of upstream "wow" mirrors to project
vod_saas of upstream "saas"; each upstream is a mock of its own. Every copy reaches its destination
with that destination's id and credentials and the body as sent; both copies are in Redis before
the SDK's 200; each copy is delivered on its own (a mirror down, or rate-limited, never holds up
the primary); a SIGKILL loses no copy; dead letters are listed and replayed per destination; /status
names each destination. Every delivery timing is sentryq's default (etc/sentryq.conf)."""

import gzip
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import (check_envelope_rewrite, decode_body, load_fixture, new_event_id,  # noqa: E402
                             split_envelope)
from sqtest.http import parse_sentry_auth, query_pairs, request  # noqa: E402
from sqtest.ledger import Ledger, Loader, check_delivery, records_by_eid, summary  # noqa: E402
from sqtest.mock import rec_body, rec_header  # noqa: E402
from sqtest.proc import check, free_port, masked, tmpdir, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.world import DEFAULT_TIMINGS, Project, World, upstream_state  # noqa: E402

SEC_WOW, SEC_SAAS = "5e1f4c3a8b6d9e0f1a2b3c4d0d2c7a9b", "9e0f1a2b3c4d5e1f4c3a8b6d0d2c7a9b"
# The timings the bounds below are derived from: forward.retry_initial's default (etc/sentryq.conf),
# the +-10 % jitter on every wait (OUTAGE_JITTER, include/outage.h) and the forwarder's 100 ms tick
# (TICK_PERIOD, src/forward.c).
RETRY_INITIAL, JITTER, TICK = 1.0, 0.1, 0.1


def mirrored_world(wow_port=None, saas_port=None, start_mocks=True, wow_latency=None, saas_latency=None,
                   **over):
    """A World with mocks "wow" and "saas" and the mirrored project; every delivery timing is
    sentryq's default unless `over` says otherwise. Returns (world, wow mock, saas mock, primary
    project, mirror project)."""
    w = World()
    wow = w.mock("wow", port=wow_port or free_port(), start=False, latency_ms=wow_latency)
    saas = w.mock("saas", port=saas_port or free_port(), start=False, latency_ms=saas_latency)
    if start_mocks:
        wow.start()
        saas.start()
    mirror = Project("saas", "vod_saas", 21, secret=SEC_SAAS)
    primary = Project("wow", "vod_be", 20, secret=SEC_WOW, mirror=[mirror])
    w.start([("wow", wow.url, [primary]), ("saas", saas.url, [mirror])], **dict(DEFAULT_TIMINGS, **over))
    return w, wow, saas, primary, mirror


def dests(w, primary, mirror):
    """(project, its mock, the other destination) for both destinations."""
    return [(primary, w.mocks["wow"], mirror), (mirror, w.mocks["saas"], primary)]


def ok_records(mock):
    return records_by_eid([r for r in mock.all_requests() if isinstance(r["status"], int) and
                           200 <= r["status"] < 300])


# ------------------------------------------------------------ a. both destinations, their own ids

ITEMS = split_envelope(load_fixture("browser-tunnel-2.json")["body"])[1]


def envelope(eid, dsn=None, public_key=None):
    hdr = {"event_id": eid, "sent_at": "2026-12-01T10:00:00.000Z",
           "sdk": {"name": "sentry.javascript.browser", "version": "11.12.0"}}
    if dsn:
        hdr["dsn"] = dsn
    if public_key:
        hdr["trace"] = {"environment": "mirror", "public_key": public_key,
                        "trace_id": "f9356a1792ca4192bfe0cabdf95e2347"}
    return json.dumps(hdr, separators=(",", ":")).encode() + b"\n" + ITEMS


def test_each_destination_gets_its_own_id_and_key():
    w, wow, saas, primary, mirror = mirrored_world()
    try:
        sent = {}  # eid -> (kind, endpoint, plain body sent, the request's carrier)
        led = Ledger()
        eid, r = led.send(w.port, primary, "a", 0)
        check(r.status == 200 and r.json().get("id") == eid, "store answered %r" % r)
        sent[eid] = ("store", "store/", led.events[eid][1], ("auth", primary.auth()))

        cases = [
            # plain envelope, the credentials in the query, a dsn and trace.public_key in its header
            ("envelope-query", False, primary.api + "envelope/",
             "sentry_key=wow&sentry_version=7&sentry_secret=vod_be", [], True),
            # a plain envelope with neither: forwarded byte for byte
            ("envelope-plain", False, primary.api + "envelope/", "", [("X-Sentry-Auth", primary.auth())], False),
            # gzip, X-Sentry-Auth, a dsn and trace.public_key in the header
            ("envelope-gzip", True, primary.api + "envelope/", "", [("X-Sentry-Auth", primary.auth())], True),
            # the JavaScript tunnel: gzip, the header dsn is the only credential (rule 2: key + real id)
            ("tunnel-gzip", True, "/tunnel", "", [], True),
        ]
        for kind, gz, path, query, hdrs, with_dsn in cases:
            eid = new_event_id()
            dsn = None
            if with_dsn:
                dsn = ("http://wow@127.0.0.1:%d/%d" % (w.port, primary.id) if kind.startswith("tunnel")
                       else "http://wow:vod_be@127.0.0.1:%d/%d" % (w.port, primary.id))
            plain = envelope(eid, dsn, "wow" if with_dsn else None)
            headers = [("Content-Type", "text/plain;charset=UTF-8" if kind.startswith("tunnel")
                        else "application/x-sentry-envelope")] + hdrs
            if gz:
                headers.append(("Content-Encoding", "gzip"))
            r = request(w.port, "POST", path + ("?" + query if query else ""), headers,
                        gzip.compress(plain) if gz else plain)
            check(r.status == 200 and r.json().get("id") == eid, "%s answered %r" % (kind, r))
            carrier = ("query", query) if query else ("auth", hdrs[0][1]) if hdrs else ("dsn", None)
            sent[eid] = (kind, "envelope/", plain, carrier)

        names = {primary.key: "<wow key>", primary.secret: "<wow secret>", mirror.key: "<saas key>",
                 mirror.secret: "<saas secret>"}
        for dest, mock, other in dests(w, primary, mirror):
            got = wait_for(lambda: (lambda g: g if all(e in g for e in sent) else None)(ok_records(mock)), 15,
                           "all %d requests at %s" % (len(sent), dest.upstream))
            for eid, (kind, ep, plain, (carrier, value)) in sent.items():
                what = "%s at %s" % (kind, dest.upstream)
                recs = got[eid]
                check(len(recs) == 1, "%s: %d deliveries, want 1" % (what, len(recs)))
                rec = recs[0]
                check(rec["path"] == "/api/%d/%s" % (dest.id, ep), "%s: path %r, want /api/%d/%s" % (
                    what, rec["path"], dest.id, ep))
                auth = rec_header(rec, "X-Sentry-Auth")
                if carrier == "auth":
                    want = [(k, {"sentry_key": dest.key, "sentry_secret": dest.secret}.get(k, v))
                            for k, v in parse_sentry_auth(value)]
                    check(len(auth) == 1 and parse_sentry_auth(auth[0]) == want,
                          "%s: X-Sentry-Auth %s, want %s" % (what, masked(auth, names), masked(want, names)))
                else:
                    check(not auth, "%s: X-Sentry-Auth added: %s" % (what, masked(auth, names)))
                if carrier == "query":
                    want = [(k, {"sentry_key": dest.key, "sentry_secret": dest.secret}.get(k, v))
                            for k, v in query_pairs(value)]
                    check(query_pairs(rec["query"]) == want, "%s: query %s, want %s" % (
                        what, masked(rec["query"], names), masked(want, names)))
                else:
                    check(rec["query"] == "", "%s: query %s added" % (what, masked(rec["query"], names)))
                ce = rec_header(rec, "Content-Encoding")
                body = decode_body(rec_body(rec), ce[0] if ce else None)
                if kind == "store" or kind == "envelope-plain":
                    check(rec_body(rec) == plain, "%s: body differs from what was sent" % what)
                else:
                    check(ce == (["gzip"] if "gzip" in kind else []), "%s: Content-Encoding %r" % (what, ce))
                    check_envelope_rewrite(plain, body, "http://%s@127.0.0.1:%d/%d" % (dest.key, mock.port, dest.id),
                                           "wow", dest.key, what, names)
                # nothing of the other destination leaks into this copy
                raw = json.dumps(rec["headers"]) + rec["query"] + body.decode("utf-8", "replace")
                check(other.key not in raw and other.secret not in raw,
                      "%s: carries the other destination's credentials" % what)
        w.wait_pending_zero()
        st = w.status()
        check(w.counters().get("forwarded") == 2 * len(sent), "counters.forwarded %r, want %d" % (
            w.counters().get("forwarded"), 2 * len(sent)))
        check(st["queue"]["bytes"] == 0, "queue.bytes %r after everything was delivered" % st["queue"]["bytes"])
    finally:
        w.close()


# ------------------------------------------------------------ b. both copies before the 200

def test_both_copies_in_redis_before_the_200():
    # Nothing can be delivered (both upstreams down), so nothing is acked: what an answered SDK
    # request left in Redis is still there when we look.
    w, wow, saas, primary, mirror = mirrored_world(start_mocks=False)
    try:
        led = Ledger()
        body_bytes = 0
        for i in range(20):
            eid, r = led.send(w.port, primary, "b", i)
            check(r.status == 200, "event %d answered %r" % (i, r))
            body_bytes += len(led.events[eid][1])
            for prj in (primary, mirror):
                n = w.xlen(prj)
                check(n == i + 1, "after %d answers XLEN %s = %d" % (i + 1, w.stream(prj), n))
                ids = w.stream_event_ids(prj)
                check(ids[-1] == eid, "the newest entry of %s is %r, want %s" % (w.stream(prj), ids[-1], eid))
        for prj in (primary, mirror):
            check(w.stream_event_ids(prj) == [e for e in led.events], "%s does not hold every event in order"
                  % w.stream(prj))
        got = int(w.redis.command("GET", w.prefix + "bytes"))
        check(got == 2 * body_bytes, "%sbytes = %d, want both copies' %d" % (w.prefix, got, 2 * body_bytes))
        st = w.status()
        check(st["queue"]["pending"] == 40 and st["queue"]["bytes"] == 2 * body_bytes,
              "/status queue %r, want pending 40 bytes %d" % (st["queue"], 2 * body_bytes))
        # The upstreams come back: each copy goes to its destination, then leaves its stream.
        wow.start()
        saas.start()
        for name in ("wow", "saas"):
            d = w.wait_delivered(led, led.acked, 30, names=[name])
            check_delivery(led, d, allow_unacked=False)
        w.wait_pending_zero()
        check(w.xlen(primary) == 0 and w.xlen(mirror) == 0, "streams hold %d and %d entries after delivery" % (
            w.xlen(primary), w.xlen(mirror)))
        check(int(w.redis.command("GET", w.prefix + "bytes")) == 0, "byte counter not back to 0")
    finally:
        w.close()


def test_a_copy_refused_by_redis_queues_none():
    # A key of another type where the mirror's stream belongs: that XADD fails, so none may be
    # written (a script is not rolled back: the primary's copy would be queued, and delivered,
    # although the SDK was told the request failed).
    w, wow, saas, primary, mirror = mirrored_world(start_mocks=False)
    try:
        w.redis.command("SET", w.stream(mirror), "not a stream")
        led = Ledger()
        eid, r = led.send(w.port, primary, "wt", 0)
        check(r.status == 503, "answered %r although the mirror's copy cannot be written" % r)
        check(w.xlen(primary) == 0, "the primary's stream holds %d entries of a request answered 503" %
              w.xlen(primary))
        check(w.redis.command("GET", w.prefix + "bytes") in (None, b"0"), "byte counter moved")
        w.redis.command("DEL", w.stream(mirror))
        eid, r = led.send(w.port, primary, "wt", 1)
        check(r.status == 200, "answered %r once the key is gone" % r)
        check(w.stream_event_ids(primary) == [eid] and w.stream_event_ids(mirror) == [eid],
              "streams %r %r" % (w.stream_event_ids(primary), w.stream_event_ids(mirror)))
    finally:
        w.close()


def test_buffered_copies_reach_both_streams():
    # Redis away: the copies wait in the memory buffer, together, and reach both streams after.
    w, wow, saas, primary, mirror = mirrored_world(start_mocks=False, buffer_bytes=67108864)
    try:
        led = Ledger()
        w.redis.stop()
        wait_for(lambda: not w.status()["redis"]["connected"], 10, "sentryq to see Redis gone")
        for i in range(5):
            eid, r = led.send(w.port, primary, "bb", i)
            check(r.status == 200, "event %d answered %r while Redis is away (buffer on)" % (i, r))
        st = w.status()
        check(st["queue"]["buffered"] == 10, "queue.buffered %r, want 10 (two copies of 5)" % st["queue"])
        w.redis.start()
        wait_for(lambda: w.status()["queue"]["buffered"] == 0, 20, "the buffer written to Redis")
        for prj in (primary, mirror):
            check(sorted(w.stream_event_ids(prj)) == sorted(led.events), "%s lacks buffered events: %r" % (
                w.stream(prj), w.stream_event_ids(prj)))
        wow.start()
        saas.start()
        for name in ("wow", "saas"):
            check_delivery(led, w.wait_delivered(led, led.acked, 30, names=[name]), allow_unacked=False)
    finally:
        w.close()


def test_spooled_copies_reach_both_destinations():
    # Redis away, then sentryq stopped: both copies of each buffered request go to the spool file
    # and, read back at the next start, to both destinations.
    spool = os.path.join(tmpdir("sentryq-spool-"), "sentryq.spool")
    w, wow, saas, primary, mirror = mirrored_world(buffer_bytes=67108864, redis_extra='spool_file = "%s";' % spool)
    try:
        led = Ledger()
        w.redis.stop()
        wait_for(lambda: not w.status()["redis"]["connected"], 10, "sentryq to see Redis gone")
        for i in range(5):
            led.send(w.port, primary, "spool", i)
        check(len(led.acked) == 5, "answers while Redis is away: %s" % led.statuses())
        check(w.status()["queue"]["buffered"] == 10, "queue.buffered %r, want 10" % w.status()["queue"])
        rc = w.sq.stop(timeout=20)
        w.killed = True  # stopped on purpose
        check(rc == 0 and os.path.exists(spool), "stop exited %s, spool written: %s" % (rc, os.path.exists(spool)))
        w.redis.start()
        w.restart()
        for name in ("wow", "saas"):
            check_delivery(led, w.wait_delivered(led, led.acked, 30, names=[name]), allow_unacked=False)
        w.wait_pending_zero()
    finally:
        w.close()


# ------------------------------------------------------------ c. a mirror down for 10 s

DOWN_S = 10.0
# When the mirror listens again, how soon its backlog has arrived, at the defaults: the mock dies
# at T, so the first failure is at F >= T and it listens again at T + 10 <= F + outage_grace. The
# upstream is then still interrupted (failed entries go out again every retry_initial, +-10 %
# jitter) or, at the very edge, was just declared down, whose first probe is retry_initial away
# too. So the next attempt comes at most retry_initial * 1.1 after it listens, found by the next
# 100 ms forwarder tick; its 2xx ends the outage and the backlog (< 50 entries) goes out on all 16
# connections at once (1.8 s allowed for that, sanitizer builds included).
BACK_BOUND = RETRY_INITIAL * (1 + JITTER) + TICK + 1.8


def test_mirror_down_10s_both_get_every_event():
    w, wow, saas, primary, mirror = mirrored_world()
    try:
        led = Ledger()
        before = [led.make(primary, "c-before", i) for i in range(10)]
        Loader(led, w.port, before, workers=2).start().join(30)
        check(len(led.acked) == 10, "before the outage: %s" % led.statuses())
        w.wait_delivered(led, before, 10, names=["saas"])
        saas.stop(keep_records=True)
        t_stop = time.monotonic()
        during = [led.make(primary, "c-during", i) for i in range(30)]
        # Paced over 9 of the 10 s the mirror is away.
        Loader(led, w.port, during, workers=2, rate=30 / 9.0).start().join(30)
        check(len(led.acked) == 40, "during the outage: %s" % led.statuses())
        # The primary is not held up: every event is there before the mirror comes back.
        left = t_stop + DOWN_S - time.monotonic()
        check(left > 0.3, "sending took until %.1fs into the outage" % (DOWN_S - left))
        d_wow = w.wait_delivered(led, led.acked, left - 0.2, names=["wow"])
        slow = [e for e, t in d_wow.latencies(led, led.acked).items() if t > 2.0]
        check(not slow, "%d primary copies took over 2 s while the mirror was down" % len(slow))
        st = upstream_state(w, "saas")
        check(st["state"] != "up" and upstream_state(w, "wow")["state"] == "up",
              "upstream states while the mirror is down: saas %r, wow %r" % (st, upstream_state(w, "wow")))
        time.sleep(max(0.0, t_stop + DOWN_S - time.monotonic()))  # the scenario: away for 10 s
        saas.start()
        t_back = time.monotonic()
        after = [led.make(primary, "c-after", i) for i in range(10)]
        Loader(led, w.port, after, workers=2).start().join(30)
        check(len(led.acked) == 50, "after the outage: %s" % led.statuses())
        d = w.wait_delivered(led, led.acked, 30, names=["saas"])
        backlog = [e for e in led.acked if led.t_answer[e] < t_back]
        took = d.last_first_ok(backlog) - t_back
        print("# mirror back: its backlog of %d events complete %.2fs after it listened again "
              "(bound %.2fs at the defaults); its upstream 9 s into the outage: %r" % (
                  len(backlog), took, BACK_BOUND, st), flush=True)
        for name in ("wow", "saas"):
            d = w.wait_delivered(led, led.acked, 30, names=[name])
            check_delivery(led, d, allow_unacked=False)
            summary("mirror-down-10s %s" % name, led, d, w.counters())
        check(took <= BACK_BOUND, "the mirror's last event arrived %.2fs after it was back, the defaults "
              "promise %.2fs" % (took, BACK_BOUND))
        w.wait_pending_zero()
        w.check_gauges()
    finally:
        w.close()


# ------------------------------------------------------------ d. 429 on the mirror

LIMIT_S = 30


def test_mirror_429_leaves_primary_alone():
    w, wow, saas, primary, mirror = mirrored_world()
    try:
        saas.program(rules=[{"path_contains": mirror.api, "responses": [
            {"status": 429, "headers": {"Retry-After": str(LIMIT_S), "X-Sentry-Rate-Limits": "%d::project" % LIMIT_S},
             "count": 1}, {"status": 200}]}])
        led = Ledger()
        eid0, r = led.send(w.port, primary, "d", 0)
        check(r.status == 200, "first event answered %r" % r)
        rec429 = wait_for(lambda: next((x for x in saas.requests() if x["status"] == 429), None), 10,
                          "the mirror's 429")
        t429 = rec429["t"]
        lim = wait_for(lambda: w.status()["forward"]["limits"].get(mirror.label), 5,
                       "/status forward.limits to name %s" % mirror.label)
        check(len(lim) == 1 and lim[0]["scope"] == "project" and lim[0]["categories"] == "all" and
              LIMIT_S - 5 < lim[0]["seconds_left"] <= LIMIT_S,
              "forward.limits[%s] = %r" % (mirror.label, lim))
        check(primary.label not in w.status()["forward"]["limits"], "the primary shows a limit")
        eids = [led.make(primary, "d", i) for i in range(1, 31)]
        Loader(led, w.port, eids, workers=4).start().join(30)
        check(len(led.acked) == 31, "SDK answers while the mirror is limited: %s" % led.statuses())
        d_wow = w.wait_delivered(led, led.acked, 10, names=["wow"])
        slow = [e for e, t in d_wow.latencies(led, led.acked).items() if t > 2.0]
        check(not slow, "%d primary copies took over 2 s while the mirror was rate-limited" % len(slow))
        check(d_wow.last_first_ok(led.acked) < t429 + LIMIT_S - 5, "the primary finished only %.1fs after the 429" % (
            d_wow.last_first_ok(led.acked) - t429))
        st = w.status()
        held = st["forward"]["held"]
        print("# while the mirror is limited: forward.held %r, queue %r" % (held, st["queue"]), flush=True)
        check(st["queue"]["pending"] == 31, "queue.pending %r, want the 31 mirror copies" % st["queue"]["pending"])
        check(primary.label not in held, "primary copies held: %r" % held)
        d = w.wait_delivered(led, led.acked, LIMIT_S + 15, names=["saas"])
        after = [x for x in saas.requests() if x["seq"] > rec429["seq"]]
        early = [x for x in after if x["t"] < t429 + LIMIT_S - 0.3]
        check(not early, "%d requests reached the mirror %.1fs into its %ds limit" % (
            len(early), early[0]["t"] - t429 if early else 0, LIMIT_S))
        took = d.last_first_ok(led.acked) - (t429 + LIMIT_S)
        print("# mirror limit over: its %d events complete %.2fs after the limit ended" % (len(led.acked), took),
              flush=True)
        # The limit ends at a 100 ms tick, the pending scan sends everything on 16 connections.
        check(took < 3.0, "the mirror's backlog took %.1fs after its limit ended" % took)
        check_delivery(led, d, allow_unacked=False)
        check_delivery(led, w.delivery(led, ["wow"]), allow_unacked=False)
        check(len(records_by_eid(wow.requests())[eid0]) == 1, "the primary got the first event again")
        w.wait_pending_zero()
    finally:
        w.close()


def test_mirror_category_limit_holds_its_copies():
    # A limit on one category (errors, what store events count as) for 5 s: the server's to say.
    w, wow, saas, primary, mirror = mirrored_world()
    try:
        saas.program(rules=[{"responses": [{"status": 429, "headers": {"X-Sentry-Rate-Limits": "5:error:project"},
                                            "count": 1}, {"status": 200}]}])
        led = Ledger()
        led.send(w.port, primary, "d2", 0)
        rec429 = wait_for(lambda: next((x for x in saas.requests() if x["status"] == 429), None), 10,
                          "the mirror's 429")
        wait_for(lambda: w.status()["forward"]["limits"].get(mirror.label), 5, "the mirror's limit recorded")
        for i in range(1, 11):
            led.send(w.port, primary, "d2", i)
        w.wait_delivered(led, led.acked, 5, names=["wow"])
        st = wait_for(lambda: (lambda s: s if s["forward"]["held"].get(mirror.label) == 11 else None)(w.status()),
                      3, "/status forward.held[%s] == 11" % mirror.label)
        check(st["forward"]["limits"][mirror.label][0]["categories"] == "error", "limits %r" % st["forward"]["limits"])
        check(set(st["forward"]["held"]) == {mirror.label}, "forward.held %r" % st["forward"]["held"])
        d = w.wait_delivered(led, led.acked, 15, names=["saas"])
        early = [x for x in saas.requests() if x["seq"] > rec429["seq"] and x["t"] < rec429["t"] + 5 - 0.3]
        check(not early, "%d requests reached the mirror during its 5 s error limit" % len(early))
        check_delivery(led, d, allow_unacked=False)
        wait_for(lambda: not w.status()["forward"]["held"], 5, "forward.held empty once delivered")
    finally:
        w.close()


def limit_once(mock, seconds):
    """The mock's next answer is a 429 limiting the project for `seconds`, then 200s."""
    mock.program(rules=[{"responses": [{"status": 429, "headers": {
        "Retry-After": str(seconds), "X-Sentry-Rate-Limits": "%d::project" % seconds}, "count": 1}, {"status": 200}]}])


def test_passthrough_429_only_when_every_destination_limits():
    # Short limits: their length is the server's to say (Retry-After), not a setting of sentryq.
    w, wow, saas, primary, mirror = mirrored_world(passthrough=True)
    try:
        led = Ledger()
        limit_once(wow, 5)
        led.send(w.port, primary, "p", 0)
        wait_for(lambda: w.status()["forward"]["limits"].get(primary.label), 5, "the primary's limit recorded")
        # Only the primary limits: the SDK is answered 200 without its limits (they would stop the
        # SDK sending what the mirror still takes), and the mirror gets the events at once.
        during = []
        for i in range(1, 4):
            eid, r = led.send(w.port, primary, "p", i)
            check(r.status == 200, "answered %r while only the primary limits" % r)
            check(r.header("X-Sentry-Rate-Limits") is None, "a 200 carries X-Sentry-Rate-Limits %s" % (
                masked(r.header("X-Sentry-Rate-Limits"))))
            during.append(eid)
        w.wait_delivered(led, during, 2, names=["saas"])
        # Now the mirror limits too: the next request is refused until the sooner limit ends.
        limit_once(saas, 3)
        led.send(w.port, primary, "p", 4)
        wait_for(lambda: w.status()["forward"]["limits"].get(mirror.label), 5, "the mirror's limit recorded")
        r = request(w.port, "POST", primary.api + "store/", [("X-Sentry-Auth", primary.auth())],
                    json.dumps({"event_id": new_event_id(), "message": "refused"}).encode())
        check(r.status == 429, "answered %r while every destination limits" % r)
        ra = r.header("Retry-After")
        check(ra is not None and ra.isdigit() and 1 <= int(ra) <= 3, "Retry-After %r, want 1..3" % ra)
        # The sooner limit ends: accepted again; everything answered 200 reaches both.
        wait_for(lambda: led.send(w.port, primary, "p-after", 0)[1].status == 200, 6, "accepted again",
                 interval=0.3)
        for name in ("wow", "saas"):
            check_delivery(led, w.wait_delivered(led, led.acked, 20, names=[name]), allow_unacked=False)
    finally:
        w.close()


# ------------------------------------------------------------ e. SIGKILL in the middle

def test_sigkill_loses_no_copy():
    w, wow, saas, primary, mirror = mirrored_world(wow_latency=20, saas_latency=40, buffer_bytes=67108864)
    try:
        # The mirror fails its first 40 requests (503), then accepts.
        saas.program(rules=[{"responses": [{"status": 503, "count": 40}, {"status": 200}]}])
        led = Ledger()
        eids = [led.make(primary, "e", i) for i in range(200)]
        # Paced (100 a second), so the kill falls in the middle of the stream.
        load = Loader(led, w.port, eids, workers=8, rate=100).start()
        wait_for(lambda: load.acked() >= 100 or load.done(), 30, "100 events acknowledged", interval=0.05)
        load.stop()
        w.kill9()
        load.join(30)
        check(len(load.attempted) < 180, "%d of 200 were sent before the kill" % len(load.attempted))
        at_kill = len(led.acked)
        pending = (w.xlen(primary), w.xlen(mirror))
        w.restart()
        Loader(led, w.port, eids[len(load.attempted):], workers=8).start().join(60)
        for name in ("wow", "saas"):
            d = w.wait_delivered(led, led.acked, 60, names=[name])
            check_delivery(led, d, allow_unacked=True)
            summary("mirror-sigkill %s" % name, led, d, w.counters(),
                    "acked_at_kill=%d streams_at_kill=%r" % (at_kill, pending))
        w.wait_pending_zero(30)
    finally:
        w.close()


# ------------------------------------------------------------ f. dead letters per destination

def dead_json(w, *args):
    p = w.dead("list", "--json", *args)
    check(p.returncode == 0, "dead list %s exited %r: %r" % (" ".join(args), p.returncode, p.stderr))
    return json.loads(p.stdout)


def test_dead_replay_per_destination():
    w, wow, saas, primary, mirror = mirrored_world()
    try:
        # Permanent refusals: the mirror refuses events tagged m-dead, the primary those tagged p-dead.
        saas.program(rules=[{"body_contains": "m-dead", "responses": [{"status": 400}]}])
        wow.program(rules=[{"body_contains": "p-dead", "responses": [{"status": 400}]}])
        led = Ledger()
        good = [led.send(w.port, primary, "ok", i)[0] for i in range(3)]
        m_dead = [led.send(w.port, primary, "m-dead", i)[0] for i in range(3)]
        p_dead = [led.send(w.port, primary, "p-dead", 0)[0]]
        check(len(led.acked) == 7, "answers %s" % led.statuses())
        w.wait_delivered(led, good + m_dead, 15, names=["wow"])
        w.wait_delivered(led, good + p_dead, 15, names=["saas"])
        wait_for(lambda: len(dead_json(w)) == 4, 15, "4 dead letters")
        w.wait_pending_zero()
        lst = dead_json(w, "--route", mirror.route)
        check(sorted(o["event_id"] for o in lst) == sorted(m_dead) and
              all((o["upstream"], o["project"], o["reason"], o["status"]) == ("saas", "vod_saas", "permanent", 400)
                  for o in lst), "dead list --route %s: %r" % (mirror.route, lst))
        lst = dead_json(w, "--route", primary.route)
        check([o["event_id"] for o in lst] == p_dead and lst[0]["upstream"] == "wow",
              "dead list --route %s: %r" % (primary.route, lst))
        p = w.dead("list", "--route", mirror.route)
        check(p.returncode == 0 and p.stdout.splitlines()[-1] == "3 dead letters" and
              all(" saas/vod_saas " in ln for ln in p.stdout.splitlines()[:-1]), "dead list text: %r" % p.stdout)
        # The mirror accepts everything now; only its dead letters go back, to it alone.
        saas.program()
        wow_before = records_by_eid(wow.requests())
        p = w.dead("replay", "--all", "--route", mirror.route)
        check(p.returncode == 0 and p.stdout == "replayed 3\n", "dead replay exited %r: %r %r" % (
            p.returncode, p.stdout, p.stderr))
        d = w.wait_delivered(led, m_dead, 15, names=["saas"])
        check(all(len(d.ok[e]) == 1 for e in m_dead), "replayed events delivered more than once")
        check(not d.corrupt, "replayed events arrived changed")
        w.wait_pending_zero()
        wow_after = records_by_eid(wow.requests())
        again = [e for e in m_dead + p_dead if len(wow_after.get(e, [])) != len(wow_before.get(e, []))]
        check(not again, "the primary got %d events again after the mirror's replay" % len(again))
        check(len(wow_after[p_dead[0]]) == 1, "the primary's dead letter was sent again")
        lst = dead_json(w)
        check([o["event_id"] for o in lst] == p_dead and lst[0]["upstream"] == "wow",
              "dead letters left after the mirror's replay: %r" % lst)
        check(w.xlen(primary) == 0, "the primary's stream holds %d entries" % w.xlen(primary))
        # --route names a destination for --all only: ids name their entries already.
        p = w.dead("replay", lst[0]["id"], "--route", primary.route)
        check(p.returncode == 2, "dead replay ID --route exited %r: %r" % (p.returncode, p.stderr))
        # purge per destination: the mirror has none left, the primary's one goes
        p = w.dead("purge", "--all", "--route", mirror.route)
        check(p.returncode == 0 and p.stdout == "purged 0\n", "purge --route %s: %r %r" % (
            mirror.route, p.stdout, p.stderr))
        check(len(dead_json(w)) == 1, "the mirror's purge removed another route's dead letter")
        p = w.dead("purge", "--all", "--route", primary.route)
        check(p.returncode == 0 and p.stdout == "purged 1\n", "purge --route %s: %r %r" % (
            primary.route, p.stdout, p.stderr))
        check(dead_json(w) == [], "dead letters left after purging both routes")
    finally:
        w.close()


# ------------------------------------------------------------ g. /status per destination

def test_status_names_each_destination():
    w, wow, saas, primary, mirror = mirrored_world()
    try:
        saas.stop()
        led = Ledger()
        for i in range(5):
            led.send(w.port, primary, "g", i)
        w.wait_delivered(led, led.acked, 10, names=["wow"])
        st = wait_for(lambda: (lambda s: s if s["forward"]["upstreams"]["saas"]["failures"] > 0 and
                               s["queue"]["pending"] == 5 else None)(w.status()), 10,
                      "/status: the mirror failing, its 5 copies pending")
        ups = st["forward"]["upstreams"]
        check(set(ups) == {"wow", "saas"}, "forward.upstreams %r" % sorted(ups))
        check(ups["wow"]["state"] == "up" and ups["wow"]["failures"] == 0 and ups["wow"]["in_flight"] == 0,
              "the primary's upstream %r" % ups["wow"])
        check(ups["saas"]["state"] in ("interrupted", "down") and ups["saas"]["down_for_s"] > 0,
              "the mirror's upstream %r" % ups["saas"])
        c = st["counters"]
        check(c["received"] == 5 and c["enqueued"] == 5 and c["forwarded"] == 5,
              "counters %r: 5 requests, 5 answered, 5 of their 10 copies delivered" % c)
        text = json.dumps(st)
        check("vod_saas" not in text and "vod_be" not in text, "/status shows a project name (a DSN secret)")
        saas.start()
        w.wait_delivered(led, led.acked, 10, names=["saas"])
        w.wait_pending_zero()
        check(w.counters()["forwarded"] == 10, "counters.forwarded %r, want 10 copies" % w.counters())
    finally:
        w.close()


if __name__ == "__main__":
    main(globals())
