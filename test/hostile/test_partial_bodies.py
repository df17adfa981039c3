#!/usr/bin/python3
"""test_partial_bodies.py - partial bodies against the body-memory bound, at the shipped defaults
(listen.max_body_memory 256 MiB, the last 1/16 kept for small bodies; max_body_size 200 MiB,
written out so that the binary from before the hardening, whose default was 20 MiB, reads the same).

20 connections each announce Content-Length 100 MiB; those admitted send 95 MiB at once, then
1 KiB every 0.25 s (4 KiB/s, above min_body_rate) for 7 s, past head_timeout. Asserted: at most
two are admitted (240 MiB / 100 MiB), the rest get 503 JSON with Retry-After before their body is
read; sentryq's VmHWM stays under its baseline RSS + max_body_memory + 32 MiB (the constant: evbuffer
chains, the Redis and upstream buffers, allocator slack); listen.body_memory never exceeds the
bound; meanwhile a new large request gets 503 + Retry-After and small events get 200; once the
connections close, VmRSS comes back under baseline + 32 MiB (glibc returning the freed heap);
/status under 50 ms throughout; a valid request afterwards is delivered."""

import os
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.attack import (LEGACY, MAX_BODY_MEMORY, Poller, Stack, check_status_bound, close_all, connect,  # noqa: E402
                           expect_json_detail, figure, parse_answers, post_event, read_until_close,
                           status_summary, valid_request_delivered, wait_delivered)
from sqtest.proc import check, is_sanitized, proc_stat, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import AUTH_VOD  # noqa: E402

S = {}
N = 20
LENGTH = 100 << 20
BULK = 95 << 20
TRICKLE_S = 7.0
SLACK = 32 << 20


def head(length=LENGTH):
    return (b"POST /api/20/envelope/ HTTP/1.1\r\nHost: relay\r\nX-Sentry-Auth: " + AUTH_VOD.encode() +
            b"\r\nContent-Type: application/x-sentry-envelope\r\nContent-Length: %d\r\n\r\n" % length)


def setup_module():
    S["stack"] = Stack().start(max_body=209715200)


def teardown_module():
    S["stack"].stop()


def test_partial_bodies_bounded():
    stack = S["stack"]
    pid = stack.pid
    base = proc_stat(pid)[1] << 10
    poll = Poller(stack.port)
    socks = [connect(stack.port, timeout=30) for _ in range(N)]
    for s in socks:
        s.sendall(head())
    # Refusals come before any body byte: wait for those answers (bounded), the rest are admitted.
    answers = {}
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        live = [s for i, s in enumerate(socks) if i not in answers]
        ready = select.select(live, [], [], 0.5)[0]
        if not ready and answers:
            break
        for s in ready:
            data, _, _ = read_until_close(s, 1.0)
            answers[socks.index(s)] = parse_answers(data)
    admitted = [i for i in range(N) if i not in answers]
    peak = {"hwm": 0, "rss": 0, "body_memory": 0}
    stop = threading.Event()

    def sample():   # pacing: a sample every 0.2 s until told to stop
        while not stop.is_set():
            try:
                _, rss, hwm = proc_stat(pid)
                peak["rss"], peak["hwm"] = max(peak["rss"], rss << 10), max(peak["hwm"], hwm << 10)
                if not LEGACY:
                    peak["body_memory"] = max(peak["body_memory"], stack.listen().get("body_memory", 0))
            except (OSError, ValueError):
                pass
            stop.wait(0.2)
    sampler = threading.Thread(target=sample)
    sampler.start()
    cut = set()

    def bulk(i):
        try:
            chunk = b"\0" * (1 << 20)
            for _ in range(BULK >> 20):
                socks[i].sendall(chunk)
        except OSError:
            cut.add(i)
    try:
        senders = [threading.Thread(target=bulk, args=(i,)) for i in admitted]
        for t in senders:
            t.start()
        for t in senders:
            t.join(timeout=120)
        t_end = time.monotonic() + TRICKLE_S
        late_large = late_small = None
        while time.monotonic() < t_end:
            for i in admitted:
                if i not in cut:
                    try:
                        socks[i].send(b"\0" * 1024)
                    except OSError:
                        cut.add(i)
            if late_large is None:
                s = connect(stack.port)
                s.sendall(head())
                late_large = parse_answers(read_until_close(s, 3.0)[0])
                s.close()
                late_small = post_event(stack.port)
            time.sleep(0.25)   # pacing: 4 KiB/s per connection, above min_body_rate
        during = proc_stat(pid)
    finally:
        close_all(socks)
    # After the close: the memory comes back (bounded poll).
    t0 = time.monotonic()
    try:
        wait_for(lambda: (proc_stat(pid)[1] << 10) < base + SLACK, 10, "RSS back under baseline + 32 MiB")
        back = True
    except AssertionError:
        back = False
    after_secs = time.monotonic() - t0
    stop.set()
    sampler.join(timeout=10)
    rss_after = proc_stat(pid)[1] << 10
    res = poll.stop()
    refused = [i for i, a in answers.items() if a and a[0].status == 503]
    mib = 1 << 20
    figure("partial_bodies", "%d x Content-Length 100 MiB: %d admitted, %d refused 503 (answers %r), %d cut while "
           "trickling; baseline RSS %.0f MiB, peak VmRSS %.0f MiB, VmHWM %.0f MiB (bound %.0f MiB), RSS at the end of "
           "the trickle %.0f MiB, after close %.0f MiB (%s within %.1f s); peak listen.body_memory %.0f MiB; a new "
           "large request meanwhile %s; a small event meanwhile %s; %s" % (
               N, len(admitted), len(refused), sorted({a[0].status if a else None for a in answers.values()},
                                                      key=str), len(cut),
               base / mib, peak["rss"] / mib, peak["hwm"] / mib, (base + MAX_BODY_MEMORY + SLACK) / mib,
               (during[1] << 10) / mib, rss_after / mib, "back" if back else "NOT back", after_secs,
               peak["body_memory"] / mib, late_large[0].status if late_large else None,
               late_small[1].status if late_small else None, status_summary(res)))
    check(len(admitted) <= 2, "%d bodies of 100 MiB admitted under a 256 MiB bound" % len(admitted))
    for i in refused[:3]:
        expect_json_detail(answers[i][0], 503, "a 100 MiB body past the memory bound")
        check(answers[i][0].header("Retry-After"), "503 without Retry-After")
    check(len(refused) == N - len(admitted), "answers to the refused: %r" % answers)
    check(not cut, "%d admitted bodies at 4 KiB/s were cut off" % len(cut))
    # Under ASan the allocator's redzones and its 256 MiB quarantine of freed blocks make RSS say
    # nothing about sentryq's own memory: the RSS bounds are checked on the plain build only.
    asan = is_sanitized(stack.sq.bin)
    if asan:
        print("# SKIP (AddressSanitizer build): the VmHWM bound and the RSS return", flush=True)
    check(asan or peak["hwm"] < base + MAX_BODY_MEMORY + SLACK,
          "VmHWM %.0f MiB over baseline + max_body_memory + 32 MiB" % (peak["hwm"] / mib))
    check(peak["body_memory"] <= MAX_BODY_MEMORY, "listen.body_memory %d over the bound" % peak["body_memory"])
    check(late_large and late_large[0].status == 503 and late_large[0].header("Retry-After"),
          "a new large request while memory is full: %r" % late_large)
    expect_json_detail(late_large[0], 503, "a new large request while memory is full")
    check(late_small and late_small[1].status == 200, "a small event while memory is full: %r" % (late_small,))
    wait_delivered(stack, [late_small[0]])
    check(asan or back, "RSS %.0f MiB %.0f s after the bodies were released, baseline %.0f MiB" % (
        rss_after / mib, after_secs, base / mib))
    print("# worst /status samples [s, ms]: %r" % res["worst"], flush=True)
    check_status_bound("partial_bodies", res)
    valid_request_delivered(stack, "partial_bodies")


main(globals())
