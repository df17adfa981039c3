"""runner.py - runs the test_* functions of a test file: `main(globals())` at its end.

Prints "ok - name" or "FAIL - name" per test and a closing "N passed, M failed" line (what
scripts/test-summary adds up). After the tests every sentryq still running is stopped and the
suite's process health is checked: a sanitizer report, a configured credential in a log, or a
graceful stop that exited non-zero fails the suite as "FAIL - sentryq_process_health". A clean
health check is only a comment line: it is not a test and never counts as a passed one.
SENTRYQ_TEST_ONLY=<regex> runs only the tests whose names match.
"""

import os
import re
import sys
import time
import traceback

from sqtest.proc import cleanup
from sqtest.sentryq import print_new_logs, process_health, stop_all


def main(ns):
    """Run every test_* function of the module namespace in definition order."""
    tests = [(k, v) for k, v in ns.items() if k.startswith("test_") and callable(v)]
    only = os.environ.get("SENTRYQ_TEST_ONLY")
    if only:
        tests = [(k, v) for k, v in tests if re.search(only, k)]
    passed = failed = 0
    setup, teardown = ns.get("setup_module"), ns.get("teardown_module")
    try:
        if setup:
            setup()
    except Exception:
        print("FAIL - setup_module\n" + traceback.format_exc(), flush=True)
        print_new_logs()
        print("0 passed, %d failed" % max(1, len(tests)), flush=True)
        cleanup()
        sys.exit(1)
    try:
        for name, fn in tests:
            t0 = time.monotonic()
            try:
                fn()
            except Exception:
                failed += 1
                print("FAIL - %s (%.1fs)\n%s" % (name, time.monotonic() - t0, traceback.format_exc()),
                      flush=True)
                print_new_logs()
            else:
                passed += 1
                print("ok - %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
    finally:
        if teardown:
            try:
                teardown()
            except Exception:
                print("teardown_module raised:\n" + traceback.format_exc(), flush=True)
        stop_all()
        bad = process_health()
        if bad:
            failed += 1
            print("FAIL - sentryq_process_health\n" + bad, flush=True)
        else:
            print("# sentryq process health: no sanitizer report, no leaked credential, "
                  "every graceful stop exited 0", flush=True)
        cleanup()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed or not passed else 0)
