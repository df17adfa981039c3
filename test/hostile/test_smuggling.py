#!/usr/bin/python3
"""test_smuggling.py - request smuggling against the ingest port, at the shipped defaults.

The attacker hides a second request in the body of one whose framing an HTTP server may read two
ways: a GET with a body (evhttp does not read a GET's body: its bytes become the next request), two
Content-Length headers (equal or not), Content-Length with Transfer-Encoding, a chunked GET. A
victim posts a legitimate envelope for another project, on another connection and (as a front
proxy pooling its backend connections would) right behind the attack on the same connection.
Asserted: every attack gets a 400 JSON answer and its connection ends there; the mock upstream
sees exactly one request per event sentryq accepted, each carrying the credentials of the project
its own event belongs to; the victim's event is delivered with its own credentials."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.attack import (AUTH_WEB, REAL, Poller, Stack, check_status_bound, connect, envelope,  # noqa: E402
                           expect_json_detail, figure, new_eid, parse_answers, post_victim, read_all,
                           record_credentials, record_event_id, status_summary, valid_request_delivered,
                           wait_delivered, wait_drained)
from sqtest.proc import check  # noqa: E402
from sqtest.runner import main  # noqa: E402

S = {}
SMUGGLED = b"POST /api/20/envelope/ HTTP/1.1\r\nHost: attacker\r\nContent-Length: 190\r\n\r\n"
GET_STORE = b"GET /api/1/store/?sentry_key=wow&sentry_secret=vod_be&sentry_data=x HTTP/1.1\r\nHost: relay\r\n"
OUTCOMES = []   # (variant, what the attacker got) for the figure line


def setup_module():
    S["stack"] = Stack().start()
    S["accepted"] = {}      # eid -> relay-side project it was sent for
    S["poll"] = Poller(S["stack"].port)


def teardown_module():
    if "poll" in S:
        S["poll"].stop()
    if "stack" in S:
        S["stack"].stop()


def victim_head(eid):
    body = envelope(eid)
    return (b"POST /api/1/envelope/ HTTP/1.1\r\nHost: relay\r\nX-Sentry-Auth: " + AUTH_WEB.encode() +
            b"\r\nContent-Type: application/x-sentry-envelope\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def attack(variant, payload, pooled=True):
    """Send the attack on its own connection (followed, when pooled, by a victim request on the same
    connection, as a proxy reusing a backend connection would), then a victim on another one.
    Returns the answers the attacker's connection got."""
    port = S["stack"].port
    s = connect(port)
    pooled_eid = new_eid() if pooled else None
    try:
        s.sendall(payload + (victim_head(pooled_eid) if pooled else b""))
        # The victim on a second connection while the attack's connection is still open.
        eid, r = post_victim(port)
        check(r.status == 200, "%s: the victim on another connection answered %r" % (variant, r))
        S["accepted"][eid] = "web"
        got = read_all(s, timeout=3.0)
    finally:
        s.close()
    answers = parse_answers(got)
    OUTCOMES.append("%s -> %s" % (variant, ",".join(str(a.status) for a in answers) or "nothing"))
    # The attack's request is refused in JSON, and nothing after it on that connection is read: a
    # second answer would mean the hidden request (or the pooled victim's bytes) was parsed.
    check(answers, "%s: no answer at all to the attack" % variant)
    expect_json_detail(answers[0], 400, variant)
    check(len(answers) == 1, "%s: %d answers on the attacker's connection, want 1: %r" % (
        variant, len(answers), answers))
    wait_delivered(S["stack"], [eid])
    return answers


def test_get_with_body_hiding_a_post():
    payload = GET_STORE + b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED
    attack("GET store + Content-Length body holding a POST", payload, pooled=False)
    attack("GET store + Content-Length body holding a POST, victim pooled behind", payload)


def test_duplicate_content_length_equal():
    eid = new_eid()
    body = envelope(eid, payload=b'{"message":"smuggler"}')
    head = (b"POST /api/20/envelope/?sentry_key=wow&sentry_secret=vod_be HTTP/1.1\r\nHost: relay\r\n"
            b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body)))
    attack("two equal Content-Length", head + body)


def test_duplicate_content_length_conflicting():
    eid = new_eid()
    body = envelope(eid, payload=b'{"message":"smuggler"}')
    head = (b"POST /api/20/envelope/?sentry_key=wow&sentry_secret=vod_be HTTP/1.1\r\nHost: relay\r\n"
            b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body) + len(SMUGGLED)))
    attack("two conflicting Content-Length", head + body + SMUGGLED)
    # The other order: the short length first.
    head = (b"POST /api/20/envelope/?sentry_key=wow&sentry_secret=vod_be HTTP/1.1\r\nHost: relay\r\n"
            b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body) + len(SMUGGLED), len(body)))
    attack("two conflicting Content-Length, short last", head + body + SMUGGLED)


def test_content_length_and_chunked():
    eid = new_eid()
    body = envelope(eid, payload=b'{"message":"smuggler"}')
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    for te in (b"Transfer-Encoding: chunked", b"Transfer-Encoding:  chunked ", b"transfer-encoding: CHUNKED"):
        head = (b"POST /api/20/envelope/?sentry_key=wow&sentry_secret=vod_be HTTP/1.1\r\nHost: relay\r\n"
                b"Content-Length: %d\r\n%s\r\n\r\n" % (len(chunked) + len(SMUGGLED), te))
        attack("Content-Length + %s" % te.decode().strip(), head + chunked + SMUGGLED)
        head = (b"POST /api/20/envelope/?sentry_key=wow&sentry_secret=vod_be HTTP/1.1\r\nHost: relay\r\n"
                b"%s\r\nContent-Length: 4\r\n\r\n" % te)
        attack("%s + Content-Length (TE first)" % te.decode().strip(), head + chunked + SMUGGLED)


def test_chunked_get():
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
    attack("chunked GET store", GET_STORE + b"Transfer-Encoding: chunked\r\n\r\n" + chunk)


def test_exactly_one_request_per_accepted_event_with_its_own_credentials():
    stack = S["stack"]
    wait_drained(stack)
    recs = stack.mock.requests()
    per_eid, problems = {}, []
    for rec in recs:
        eid = record_event_id(rec)
        if eid not in S["accepted"]:
            problems.append("the mock got a request no accepted event explains: %s %s?%s body %r" % (
                rec["method"], rec["path"], rec["query"], rec.get("body_b64", "")[:120]))
            continue
        per_eid[eid] = per_eid.get(eid, 0) + 1
        want, got = REAL[S["accepted"][eid]], record_credentials(rec)
        if got != want:
            problems.append("event %s (%s) forwarded with credentials %r, want %r" % (
                eid, S["accepted"][eid], got, want))
    dup = {e: n for e, n in per_eid.items() if n != 1}
    if dup:
        problems.append("events forwarded more than once: %r" % dup)
    missing = [e for e in S["accepted"] if e not in per_eid]
    if missing:
        problems.append("accepted events never forwarded: %r" % missing)
    res = S["poll"].stop()
    figure("smuggling", "%d attack variants: %s; mock saw %d requests for %d accepted events, %d problems; %s" % (
        len(OUTCOMES), "; ".join(OUTCOMES), len(recs), len(S["accepted"]), len(problems), status_summary(res)))
    check(not problems, "\n".join(problems))
    check_status_bound("smuggling", res)
    valid_request_delivered(stack, "smuggling")


main(globals())
