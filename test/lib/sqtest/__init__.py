"""sqtest - the Python test library of sentryq (standard library only).

Modules by concern; a test imports what it uses from each, e.g. `from sqtest.proc import check`:
  proc      failures (check, TestFailure, masked credentials in messages), bounded polling
            (wait_for), child processes and temp dirs cleaned up at exit, programs that print
            READY <port>, free loopback ports, /proc figures
  resp      a RESP2 client and a redis-server controller
  redis_ha  a Sentinel topology: a master, replicas and redis-sentinels, failover helpers
  http      a raw HTTP/1.1 client, a keep-alive connection, Sentry auth parsing, CORS/error checks
  mock      the mock upstream (test/mock_upstream.py): free or fixed port, plain or TLS control,
            its program, pause (a hung server that recovers) and concurrency stats
  tls       a test CA and server certificates made with the openssl CLI
  sentryq   sentryq processes, run_cli, the one config writer, the shipped defaults read from
            etc/sentryq.conf (shipped_settings, TIMINGS), the standard test stack, and the per-suite
            log checks (sanitizer reports, leaked credentials, graceful-stop exit codes)
  fixtures  the captured SDK requests, replay, body codecs, envelope parsing and rewrite checks,
            and envelopes built from real SDK items (sdk_envelope)
  prom      /metrics scraped and parsed (python3-prometheus-client), sample look-ups
  ledger    what a fault case sent and what arrived: Ledger (store events and envelopes), Loader,
            Delivery (with the mock's delivery times), summary, checks
  world     one fault case's processes (World) at the shipped defaults (FAULT_SETTINGS; what a case
            changes is printed), relay-side Project (and its mirrors), a background Sampler, the
            outage model's attempt times (probe_times), DEFAULT_TIMINGS (sentryq's own)
  runner    main(): runs the test_* functions of a test file and prints the verdict
  attack    the hostile suite's tools: a stack at the shipped listen defaults (or the binary from
            before the hardening, SENTRYQ_LEGACY=1), raw connections and the answers read off them,
            /status and small-event probes, delivery and credential checks, `# HOSTILE` figures
  poller    the probe program attack.Poller runs in a process of its own (python3 -I poller.py)

A test file puts test/lib on sys.path itself, relative to its own location.

Times: every time a test measures or compares, the mock's records and answers included, is
time.monotonic() (CLOCK_MONOTONIC, one clock for every process on the machine), never the wall
clock, which a clock sync may step in the middle of a 10-minute case (a fresh Debian run saw a
5 s step). The wall clock only where a value is compared with sentryq's or Redis's own epoch
times (log timestamps, entry and stream-id times).
"""
