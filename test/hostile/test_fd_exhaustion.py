#!/usr/bin/python3
"""test_fd_exhaustion.py - accept() at the fd limit (EMFILE).

sentryq runs with RLIMIT_NOFILE 24 (soft and hard: it raises the soft limit to the hard one). The
cap derived from it is clamped to its floor of 16 connections, more than the ~15 fds left after
its own (stdio, epoll, the signal pipe, listener, Redis, DNS), so held connections run the process
out of fds and accept() fails with EMFILE while the kernel backlog holds more. Asserted over a 5 s
window of that: sentryq's CPU (utime+stime from /proc/<pid>/stat) stays under 20 % of one core (no
busy loop on the failing accept), the log has at most about one "accept failed" line a second,
/status answers within 50 ms on a connection opened before; then, the flood closed, a valid
request gets 200 and is delivered."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.attack import (LEGACY, Poller, Stack, check_status_bound, close_all, connect, figure,  # noqa: E402
                           nofile, status_summary, valid_request_delivered)
from sqtest.proc import check, proc_stat, wait_for  # noqa: E402
from sqtest.runner import main  # noqa: E402

S = {}
NOFILE = 24
FLOOD = 200
WINDOW = 5.0      # seconds the CPU and the log are measured over
CPU_BOUND = 0.20  # of one core


def setup_module():
    S["stack"] = Stack()


def teardown_module():
    S["stack"].stop()


def accept_lines(stack):
    """Log lines about failed accepts (sentryq's "ingest: accept failed: ...", or libevent's own
    warning before the hardening), counted in the whole log file."""
    with open(stack.sq.logs[-1], "rb") as f:
        data = f.read()
    return data.count(b"accept failed") + data.count(b"Error from accept")


def test_emfile_no_spin_one_log_line_a_second():
    stack = S["stack"].start(preexec_fn=nofile(NOFILE))
    pid = stack.pid
    poll = Poller(stack.port)
    socks = []
    try:
        for _ in range(FLOOD):   # the kernel completes these in the backlog; sentryq accepts what it can
            try:
                socks.append(connect(stack.port, timeout=2.0))
            except OSError:
                break            # the backlog is full: the flood is as big as it gets

        wait_for(lambda: accept_lines(stack) > 0, 10, "an accept failure in the log")
        lines0 = accept_lines(stack)
        cpu0, t0 = proc_stat(pid)[0], time.monotonic()
        time.sleep(WINDOW)  # the measurement window: the flood holds, sentryq is at its fd limit
        cpu1, t1 = proc_stat(pid)[0], time.monotonic()
        lines1 = accept_lines(stack)
        alive = stack.sq.alive()
        res = poll.stop()
    finally:
        close_all(socks)
    cpu = (cpu1 - cpu0) / (t1 - t0)
    rate = (lines1 - lines0) / (t1 - t0)
    figure("fd_exhaustion", "RLIMIT_NOFILE %d, %d connections made: CPU %.1f %% of a core over %.1f s, %d accept-failure "
           "log lines in it (%.1f/s), alive %s; %s" % (NOFILE, len(socks), cpu * 100, t1 - t0, lines1 - lines0, rate,
                                                       alive, status_summary(res)))
    check(alive, "sentryq died at its fd limit")
    check(cpu < CPU_BOUND, "sentryq used %.0f %% of a core while accept() failed (busy loop?)" % (cpu * 100))
    check(lines1 - lines0 <= WINDOW + 2, "%d accept-failure lines in %.1f s (want about one a second)" % (
        lines1 - lines0, t1 - t0))
    if not LEGACY:
        check(stack.listen().get("accept_errors", 0) > 0, "listen.accept_errors did not move")
    check_status_bound("fd_exhaustion", res)
    valid_request_delivered(stack, "fd_exhaustion")


main(globals())
