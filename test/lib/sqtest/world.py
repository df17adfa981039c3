"""world.py - one fault case's processes (a World: a Redis, named mocks, one sentryq), the relay-side
Project the case's SDK traffic names, the settings every fault config starts from (the shipped
defaults of etc/sentryq.conf), a background sampler, and what the outage model allows."""

import socket
import threading
import time

from sqtest.ledger import Delivery
from sqtest.mock import Mock
from sqtest.proc import TestFailure, free_port, wait_for
from sqtest.resp import Redis
from sqtest.sentryq import (TIMINGS, Sentryq, make_config, project_conf, run_cli, shipped_settings,
                            status_counters, stream_key, upstream_conf)

# The fault suite runs the product as shipped: every make_config keyword at its etc/sentryq.conf
# value, except the Redis key prefix (a name, so that a case's keys are recognisable). A case that
# passes a timing shorter than shipped says why next to it, and another case covers the default;
# World.start prints every setting a case moves off the shipped value.
SHIPPED = shipped_settings()
FAULT_SETTINGS = dict(SHIPPED, prefix="sqf:")

# The same knobs left out of the config, so sentryq runs at its own defaults (etc/sentryq.conf):
# for cases that measure a timing users see (World.start(ups, **DEFAULT_TIMINGS)).
DEFAULT_TIMINGS = dict(redis_timeout=None, reconnect_max=None, fwd_timeout=None, connect_timeout=None,
                       retry_initial=None, retry_max=None, outage_grace=None, claim_idle=None,
                       max_connections=None, max_attempts=None, shutdown_timeout=None)


class Project:
    """One relay-side project: SDKs post with sentry_key=<upstream>, sentry_secret=<name>.
    secret: the project's real secret (sent upstream when the SDK sent one); mirror: the Projects
    its requests are also delivered to (mirror routes)."""

    def __init__(self, upstream, name, pid, secret=None, mirror=()):
        self.upstream, self.name, self.id = upstream, name, pid
        self.key = ("%032x" % (0xfa000000 + pid))[-32:]
        self.secret = secret
        self.mirror = list(mirror)

    def conf(self):
        return project_conf(self.name, self.key, self.id, self.secret,
                            [(m.upstream, m.name) for m in self.mirror])

    @property
    def api(self):
        return "/api/%d/" % self.id

    @property
    def label(self):
        """How /status names the route: "<upstream>/<real id>" (never the project name)."""
        return "%s/%d" % (self.upstream, self.id)

    @property
    def route(self):
        """How `sentryq dead ... --route` names it: UPSTREAM/PROJECT."""
        return "%s/%s" % (self.upstream, self.name)

    def auth(self, client="faults/1.0"):
        """The X-Sentry-Auth an SDK with DSN http://<upstream>:<name>@relay/<n> sends (rule 1)."""
        return "Sentry sentry_key=%s, sentry_version=7, sentry_client=%s, sentry_secret=%s" % (
            self.upstream, client, self.name)


class World:
    """One case's processes: a Redis, named mocks, one sentryq; close() kills them all."""

    def __init__(self):
        self.redis = Redis().start()
        self.mocks = {}
        self.sq = None
        self.port = free_port()
        self.cfg = None
        self.bad_gauges = []
        self.killed = False
        self.prefix = None
        self.settings = None
        self.others = []

    def mock(self, name, port=None, start=True, latency_ms=None, digest_over=None):
        m = Mock(port, latency_ms=latency_ms, digest_over=digest_over)
        if start:
            m.start()
        self.mocks[name] = m
        return m

    def config(self, port, ups, **over):
        """Config text for a sentryq on port against this world's Redis. ups: [(name, url,
        [Project])]; over: make_config keywords over FAULT_SETTINGS (the shipped defaults)."""
        text = [upstream_conf(n, url, [p.conf() for p in prjs]) for n, url, prjs in ups]
        note_overrides(over)
        settings = dict(FAULT_SETTINGS, **over)
        self.prefix = settings["prefix"] or "sentryq:"
        return make_config(port, self.redis.port, text, **settings)

    def start(self, ups, **over):
        self.settings = dict(FAULT_SETTINGS, **over)
        self.cfg = self.config(self.port, ups, **over)
        self.sq = Sentryq().start(self.cfg, self.port)
        return self.sq

    def reload(self, ups, **over):
        """SIGHUP on a new config (ups and settings as for start); returns "applied" or "refused"."""
        self.settings = dict(FAULT_SETTINGS, **over)
        self.cfg = self.config(self.port, ups, **over)
        return self.sq.reload(self.cfg)

    def start_other(self, ups, **over):
        """One more sentryq on this world's Redis (a free port; its own ups, e.g. its own mock),
        stopped by close(). Returns (Sentryq, port)."""
        port = free_port()
        sq = Sentryq().start(self.config(port, ups, **over), port)
        self.others.append(sq)
        return sq, port

    def restart(self):
        self.killed = False
        self.sq = Sentryq().start(self.cfg, self.port)
        return self.sq

    def records(self, names=None):
        """What the mocks named (all by default) recorded, with the runs a stop(keep_records=True)
        kept."""
        out = []
        for n, m in self.mocks.items():
            if names is None or n in names:
                out.extend(m.all_requests())
        return out

    def delivery(self, ledger, names=None):
        return Delivery(ledger, self.records(names))

    def wait_delivered(self, ledger, eids, timeout, names=None):
        """Poll until every eid in eids has a 2xx at a mock; returns the Delivery."""
        eids = list(eids)

        def done():
            d = self.delivery(ledger, names)
            return d if all(e in d.ok for e in eids) else None
        try:
            return wait_for(done, timeout, "%d events delivered" % len(eids), interval=0.1)
        except TestFailure:
            d = self.delivery(ledger, names)
            miss = [e for e in eids if e not in d.ok]
            tried = sum(1 for e in miss if e in d.attempts)
            alive = "" if self.sq.alive() else "; sentryq EXITED rc=%s" % self.sq.proc.returncode
            raise TestFailure("%d of %d events not delivered within %ss (%d of them attempted, "
                              "statuses of attempts: %s; e.g. %s%s)" % (
                                  len(miss), len(eids), timeout, tried,
                                  sorted({str(r["status"]) for e in miss for r in d.attempts.get(e, [])}),
                                  miss[:2], alive))

    def counters(self):
        return status_counters(self.sq)

    def stream(self, prj):
        """The Redis stream of a Project's route."""
        return stream_key(self.prefix, prj.upstream, prj.name)

    def xlen(self, prj):
        return self.redis.command("XLEN", self.stream(prj))

    def stream_event_ids(self, prj):
        """The event id (field "id") of every entry in a Project's stream, in stream order."""
        out = []
        for _, kv in self.redis.command("XRANGE", self.stream(prj), "-", "+"):
            out.append(dict(zip(kv[::2], kv[1::2])).get(b"id", b"").decode())
        return out

    def group(self, prj):
        """{consumer name: (pending, idle ms)} of the consumer group of a Project's stream, as
        XINFO CONSUMERS tells it."""
        out = {}
        for row in self.redis.command("XINFO", "CONSUMERS", self.stream(prj), "sentryq"):
            f = dict(zip(row[::2], row[1::2]))
            out[f[b"name"].decode()] = (int(f[b"pending"]), int(f[b"idle"]))
        return out

    def dead(self, *args):
        """`sentryq -c <this world's config> dead ARGS...` (CompletedProcess)."""
        return run_cli(["-c", self.sq.config_path, "dead"] + list(args))

    def status(self):
        """/status body. Every queue gauge must be a non-negative integer whenever it is read; a bad
        one is noted (not raised, so the scenario runs on) and failed by check_gauges() at the end."""
        st = self.sq.status()[1]
        bad = {k: v for k, v in st.get("queue", {}).items() if not isinstance(v, int) or v < 0}
        if bad and len(self.bad_gauges) < 20:
            self.bad_gauges.append(dict(st.get("queue", {})))
        return st

    def check_gauges(self):
        if self.bad_gauges:
            now = self.sq.status()[1].get("queue") if self.sq.alive() else None
            raise TestFailure("/status queue gauges were negative %d time(s), first %r; now %r" % (
                len(self.bad_gauges), self.bad_gauges[0], now))

    def wait_pending_zero(self, timeout=15):
        return wait_for(lambda: self.status()["queue"]["pending"] == 0, timeout, "queue.pending == 0",
                        interval=0.1)

    def kill9(self):
        self.killed = True
        self.sq.kill9()

    def close(self):
        """Graceful stop (the runner checks its exit code), bounded; then the rest is killed."""
        if self.sq and not self.sq.alive() and not self.killed:
            print("# NOTE: sentryq had already exited (rc %s) although this test never stopped it: "
                  "a crash, or a signal from outside the test (see 'shutdown: signal' in its log)" %
                  self.sq.proc.returncode, flush=True)
        if self.sq and self.sq.alive():
            try:
                # Forwards in flight get shutdown_timeout (shipped: 10 s) before sentryq exits.
                self.sq.stop(timeout=((self.settings or FAULT_SETTINGS).get("shutdown_timeout") or 10.0) + 10)
            except TestFailure as e:
                print("# %s" % e, flush=True)
        for sq in self.others:
            if sq.alive():
                try:
                    sq.stop(timeout=((self.settings or FAULT_SETTINGS).get("shutdown_timeout") or 10.0) + 10)
                except TestFailure as e:
                    print("# %s" % e, flush=True)
        for m in self.mocks.values():
            m.stop()
        self.redis.kill()


def upstream_state(world, name):
    return world.status()["forward"]["upstreams"][name]


def note_overrides(over):
    """Print the settings a case moves off the shipped defaults (timings flagged), so a run's log
    shows what was not the product."""
    moved = {k: v for k, v in over.items() if k in SHIPPED and SHIPPED[k] != v and k != "prefix"}
    if not moved:
        print("# config: the shipped defaults of etc/sentryq.conf", flush=True)
        return
    parts = []
    for k in sorted(moved):
        tag = ""
        if k in TIMINGS and SHIPPED.get(k) is not None and moved[k] is not None:
            tag = " SHORTER" if moved[k] < SHIPPED[k] else " longer"
        parts.append("%s=%r (shipped %r)%s" % (k, moved[k], SHIPPED.get(k), tag))
    print("# config: the shipped defaults except " + ", ".join(parts), flush=True)


class Sampler:
    """Calls fn() every `interval` seconds in a thread until stop(); keeps (time.monotonic() when the
    call was made, value) of every call that did not raise (a /status or mock read failing now and
    then is not a sample, only counted)."""

    def __init__(self, fn, interval=0.1, limit=1800):
        self.fn, self.interval, self.limit = fn, interval, limit  # limit: seconds it samples at most
        self.samples = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            t = time.monotonic()
            try:
                self.samples.append((t, self.fn()))
            except Exception:  # noqa: BLE001 - a failed read is counted, not a sample
                self.errors += 1
            self._stop.wait(self.interval)  # the sampling period, not a synchronisation

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        return self.samples


def default_consumer(port):
    """sentryq's default consumer name for a process that owns listen port `port` (README
    "Running several instances": <hostname>:<listen.port>)."""
    return "%s:%d" % (socket.gethostname(), port)


def probe_times(settings, seconds, jitter=-0.1):
    """When attempts go out during an outage `seconds` long that began at 0, by the outage model
    (src/outage.c) with every wait jittered by `jitter` (-0.1: the soonest sentryq may send, which
    gives the most attempts): retries every retry_initial within outage_grace, then probes at
    retry_initial growing x1.5, capped at retry_max. Returns (retry wave times, probe times)."""
    ri, rmax, grace = settings["retry_initial"], settings["retry_max"], settings["outage_grace"]
    t, waves, probes = 0.0, [0.0], []
    # A wave that fails within the grace period is retried on every connection after ~retry_initial;
    # the first wave that fails after it makes the upstream down.
    while t < grace:
        t += min(ri * (1 + jitter), rmax)
        if t >= seconds:
            return waves, probes
        waves.append(t)
    interval = ri
    while True:
        t += min(interval * (1 + jitter), rmax)
        if t >= seconds:
            return waves, probes
        probes.append(t)
        interval = min(interval * 1.5, rmax)
