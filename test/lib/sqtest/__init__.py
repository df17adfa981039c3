"""sqtest - the Python test library of sentryq (standard library only).

Modules by concern; a test imports what it uses from each, e.g. `from sqtest.proc import check`:
  proc      failures (check, TestFailure), bounded polling (wait_for), child processes and temp dirs
            cleaned up at exit, programs that print READY <port>, free loopback ports, /proc figures
  resp      a RESP2 client and a redis-server controller
  http      a raw HTTP/1.1 client, a keep-alive connection, Sentry auth parsing, CORS/error checks
  mock      the mock upstream (test/mock_upstream.py): free or fixed port, plain or TLS control
  tls       a test CA and server certificates made with the openssl CLI
  sentryq   sentryq processes, run_cli, the one config writer, the standard test stack, and the
            per-suite log checks (sanitizer reports, leaked credentials, graceful-stop exit codes)
  fixtures  the captured SDK requests, replay, body codecs and envelope parsing
  ledger    what a fault case sent and what arrived: Ledger, Loader, Delivery, summary, checks
  world     one fault case's processes (World), relay-side Project, the fast fault timings
  runner    main(): runs the test_* functions of a test file and prints the verdict
  attack    the hostile suite's tools: a stack at the shipped listen defaults (or the binary from
            before the hardening, SENTRYQ_LEGACY=1), raw connections and the answers read off them,
            /status and small-event probes, delivery and credential checks, `# HOSTILE` figures
  poller    the probe program attack.Poller runs in a process of its own (python3 -I poller.py)

A test file puts test/lib on sys.path itself, relative to its own location.
"""
