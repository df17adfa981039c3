"""faultlib.py - what the fault-injection cases share on top of test/integration/harness.py.

Adds: a config with every delivery knob (fast timings), a Mock on a fixed port, a World holding one
case's processes, a Ledger of sent/acknowledged events, a paced concurrent Loader, and the delivery
accounting (unique ids, duplicates, corruption) with the per-case SUMMARY line.

At-least-once: sentryq deletes an entry only after the upstream answered 2xx and Redis confirmed the
XACK+XDEL; a kill, a timeout whose answer was lost, or a Redis outage between the two resends the
entry. So an acknowledged event must arrive at least once; arriving twice is allowed and only counted.
"""

import json
import os
import re
import select
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import harness as H  # noqa: E402

EID_RE = re.compile(rb'"event_id":\s*"([0-9a-f]{32})"')

CONFIG = """\
listen = {{ address = "127.0.0.1"; port = {port}; }};
redis = {{ host = "127.0.0.1"; port = {redis_port}; prefix = "{prefix}"; timeout = {redis_timeout:.3f};
          reconnect_max = {reconnect_max:.3f}; buffer_bytes = {buffer_bytes}; {redis_extra}}};
queue = {{ max_pending = {max_pending}; max_bytes = {max_bytes}; }};
forward = {{ timeout = {fwd_timeout:.3f}; connect_timeout = {connect_timeout:.3f};
            retry_initial = {retry_initial:.3f}; retry_max = {retry_max:.3f};
            claim_idle = {claim_idle:.3f}; max_connections = {max_connections}; max_attempts = {max_attempts}; {forward_extra}}};
rate_limits = {{ passthrough = {passthrough}; }};
shutdown_timeout = {shutdown_timeout:.3f};
log_level = "{log_level}";
upstreams = (
{upstreams}
);
"""

FAST = dict(prefix="sqf:", redis_timeout=1.0, reconnect_max=0.5, buffer_bytes=0, max_pending=1000000,
            max_bytes=1073741824, fwd_timeout=1.0, connect_timeout=1.0, retry_initial=0.2, retry_max=2.0,
            claim_idle=2.0, max_connections=16, passthrough=False, shutdown_timeout=3.0,
            log_level="info", redis_extra="", max_attempts=0, forward_extra="")


class Project:
    """One relay-side project: SDKs post with sentry_key=<upstream>, sentry_secret=<name>."""

    def __init__(self, upstream, name, pid):
        self.upstream, self.name, self.id = upstream, name, pid
        self.key = ("%032x" % (0xfa000000 + pid))[-32:]

    def conf(self):
        return H.project_conf(self.name, self.key, self.id)

    @property
    def api(self):
        return "/api/%d/" % self.id


def make_config(port, redis_port, ups, **over):
    """ups: [(name, url, [Project])]."""
    opts = dict(FAST)
    opts.update(over)
    opts["passthrough"] = "true" if opts["passthrough"] else "false"
    text = ",\n".join(H.upstream_conf(n, url, [p.conf() for p in prjs]) for n, url, prjs in ups)
    return CONFIG.format(port=port, redis_port=redis_port, upstreams=text, **opts)


class FixedMock(H.Mock):
    """The mock upstream on a port chosen in advance (harness.Mock always takes a free one)."""

    def __init__(self, port, **kw):
        super().__init__(**kw)
        self.fixed_port = port

    def start(self, timeout=10):
        args = [H.PYTHON, H.MOCK, "--port", str(self.fixed_port)]
        self.proc = H.spawn(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while not line.endswith("\n"):
            left = deadline - time.monotonic()
            H.check(left > 0 and self.proc.poll() is None, "fixed-port mock did not print READY")
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = self.proc.stdout.readline()
                H.check(chunk, "fixed-port mock exited before READY (port %d taken?)" % self.fixed_port)
                line += chunk
        H.check(line.strip() == "READY %d" % self.fixed_port, "unexpected mock output %r" % line)
        self.port = self.fixed_port
        return self


class Records:
    """Incremental copy of a mock's recorded requests (fetches only the new ones)."""

    def __init__(self, mock):
        self.mock = mock
        self.recs = []

    def refresh(self):
        self.recs.extend(self.mock.requests(since=len(self.recs)))
        return self.recs


def eid_of(body):
    m = EID_RE.search(body[:300])
    return m.group(1).decode() if m else None


class Ledger:
    """Every event a case made: body, route, SDK answer. Thread-safe for the Loader."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = {}    # eid -> (project, body)
        self.answer = {}    # eid -> status int, or "error: ..."
        self.acked = set()
        self.t_answer = {}  # eid -> time.time() of the answer
        self.responses = {}  # eid -> harness Response (kept for non-2xx only)

    def make(self, prj, tag, i):
        eid = H.new_event_id()
        pad = ("%s-%d-" % (tag, i)) * (1 + (i * 37) % 40)
        doc = {"event_id": eid, "message": "fault %s #%d \u263a" % (tag, i), "platform": "python",
               "level": "error", "extra": {"pad": pad, "n": i}}
        body = json.dumps(doc, ensure_ascii=False).encode()
        with self.lock:
            self.events[eid] = (prj, body)
        return eid

    def post(self, port, eid, timeout=10.0):
        """Returns the Response; status 0 (body: the exception) when the connection failed."""
        prj, body = self.events[eid]
        auth = "Sentry sentry_key=%s, sentry_version=7, sentry_client=faults/1.0, sentry_secret=%s" % (
            prj.upstream, prj.name)
        try:
            r = H.request(port, "POST", prj.api + "store/", [("X-Sentry-Auth", auth),
                          ("Content-Type", "application/json")], body, timeout=timeout)
            res = r.status
        except Exception as e:  # connection refused / reset while sentryq dies: not acknowledged
            r, res = H.Response(0, [], repr(e).encode()), "error:%s" % type(e).__name__
        with self.lock:
            self.answer[eid] = res
            self.t_answer[eid] = time.time()
            if isinstance(res, int) and 200 <= res < 300:
                try:
                    ok = r.json().get("id")
                except (ValueError, AttributeError):
                    ok = None
                self.acked.add(eid)
                if ok != eid:
                    self.answer[eid] = "2xx-bad-id %r" % (ok,)
            else:
                self.responses[eid] = r
        return r

    def send(self, port, prj, tag, i, timeout=10.0):
        eid = self.make(prj, tag, i)
        return eid, self.post(port, eid, timeout)

    def of(self, prj):
        return [e for e, (p, _) in self.events.items() if p is prj]

    def statuses(self):
        out = {}
        for v in self.answer.values():
            k = str(v) if isinstance(v, int) else v.split(" ")[0]
            out[k] = out.get(k, 0) + 1
        return out

    def bad_ids(self):
        return [e for e, v in self.answer.items() if isinstance(v, str) and v.startswith("2xx-bad-id")]


class Loader:
    """Posts events from a list with `workers` concurrent connections, paced to `rate` per second
    (0 = as fast as answers come). stop() makes workers finish their current request and quit."""

    def __init__(self, ledger, port, eids, workers=8, rate=0):
        self.ledger, self.port, self.eids, self.rate = ledger, port, list(eids), rate
        self.next = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.attempted = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]
        self.t0 = None

    def start(self):
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def _take(self):
        with self.lock:
            if self.stopping.is_set() or self.next >= len(self.eids):
                return None, 0
            i = self.next
            self.next += 1
            self.attempted.append(self.eids[i])
            return self.eids[i], i

    def _run(self):
        while True:
            eid, i = self._take()
            if eid is None:
                return
            if self.rate:
                due = self.t0 + i / float(self.rate)
                if due > time.monotonic():
                    self.stopping.wait(due - time.monotonic())  # pacing the load, not synchronising
            self.ledger.post(self.port, eid)

    def acked(self):
        with self.ledger.lock:
            return sum(1 for e in self.attempted if e in self.ledger.acked)

    def stop(self):
        self.stopping.set()

    def join(self, timeout=60):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        H.check(not any(t.is_alive() for t in self.threads), "load threads did not finish in %ss" % timeout)

    def done(self):
        return not any(t.is_alive() for t in self.threads)


class Delivery:
    """What the mocks received for a ledger: per event id the 2xx bodies and all attempts."""

    def __init__(self, ledger, records):
        self.ok = {}        # eid -> [bodies answered 2xx]
        self.attempts = {}  # eid -> [records]
        self.stray = 0      # 2xx requests whose body names no event of the ledger
        self.ok_t = {}      # eid -> [mock time of each 2xx]
        for rec in records:
            body = H.rec_body(rec)
            eid = eid_of(body)
            if eid not in ledger.events:
                if isinstance(rec["status"], int) and 200 <= rec["status"] < 300:
                    self.stray += 1
                continue
            self.attempts.setdefault(eid, []).append(rec)
            if isinstance(rec["status"], int) and 200 <= rec["status"] < 300:
                self.ok.setdefault(eid, []).append(body)
                self.ok_t.setdefault(eid, []).append(rec["t"])
        self.corrupt = [e for e, bodies in self.ok.items()
                        if any(b != ledger.events[e][1] for b in bodies)]
        self.dups = sum(len(b) - 1 for b in self.ok.values())
        self.missing = [e for e in ledger.acked if e not in self.ok]
        self.unacked_delivered = [e for e in self.ok if e not in ledger.acked]
        # Smallest gap between two 2xx deliveries of one event: ~0 means two sends of one entry in
        # parallel (not a lost answer being retried).
        gaps = [b - a for ts in self.ok_t.values() for a, b in zip(sorted(ts), sorted(ts)[1:])]
        self.dup_gap_min = min(gaps) if gaps else None


class World:
    """One case's processes: a Redis, named mocks, one sentryq; close() kills them all."""

    def __init__(self):
        self.redis = H.Redis().start()
        self.mocks = {}
        self.sq = None
        self.port = H.free_port()
        self.cfg = None
        self.bad_gauges = []
        self.killed = False

    def mock(self, name, port=None, start=True):
        m = FixedMock(port) if port else H.Mock()
        if start:
            m.start()
        self.mocks[name] = m
        return m

    def start(self, ups, **over):
        self.cfg = make_config(self.port, self.redis.port, ups, **over)
        self.sq = H.Sentryq().start(self.cfg, self.port)
        return self.sq

    def restart(self):
        self.killed = False
        self.sq = H.Sentryq().start(self.cfg, self.port)
        return self.sq

    def records(self, names=None):
        out = []
        for n, m in self.mocks.items():
            if (names is None or n in names) and m.proc and m.proc.poll() is None:
                out.extend(m.requests())
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
            return H.wait_for(done, timeout, "%d events delivered" % len(eids), interval=0.1)
        except H.TestFailure:
            d = self.delivery(ledger, names)
            miss = [e for e in eids if e not in d.ok]
            tried = sum(1 for e in miss if e in d.attempts)
            alive = "" if self.sq.alive() else "; sentryq EXITED rc=%s" % self.sq.proc.returncode
            raise H.TestFailure("%d of %d events not delivered within %ss (%d of them attempted, "
                                "statuses of attempts: %s; e.g. %s%s)" % (
                                    len(miss), len(eids), timeout, tried,
                                    sorted({str(r["status"]) for e in miss for r in d.attempts.get(e, [])}),
                                    miss[:2], alive))

    def counters(self):
        return H.status_counters(self.sq)

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
            raise H.TestFailure("/status queue gauges were negative %d time(s), first %r; now %r" % (
                len(self.bad_gauges), self.bad_gauges[0], now))

    def wait_pending_zero(self, timeout=15):
        return H.wait_for(lambda: self.status()["queue"]["pending"] == 0, timeout, "queue.pending == 0",
                          interval=0.1)

    def kill9(self):
        self.killed = True
        self.sq.kill9()

    def close(self):
        """Graceful stop (the harness checks its exit code), bounded; then the rest is killed."""
        if self.sq and not self.sq.alive() and not self.killed:
            print("# NOTE: sentryq had already exited (rc %s) although this test never stopped it: "
                  "a crash, or a signal from outside the test (see 'shutdown: signal' in its log)" %
                  self.sq.proc.returncode, flush=True)
        if self.sq and self.sq.alive():
            try:
                self.sq.stop(timeout=10)
            except H.TestFailure as e:
                print("# %s" % e, flush=True)
        for m in self.mocks.values():
            m.stop()
        self.redis.kill()


def upstream_state(world, name):
    return world.status()["forward"]["upstreams"][name]


def summary(case, ledger, d, counters, extra=""):
    """The line the lead copies into the issue note."""
    if d.dup_gap_min is not None:
        extra = ("dup_gap_min=%.3fs " % d.dup_gap_min) + extra
    line = ("# SUMMARY %s: sent=%d acknowledged=%d delivered_unique=%d duplicates=%d corrupt=%d "
            "stray=%d dead=%s retried=%s statuses=%s%s" % (
                case, len(ledger.answer), len(ledger.acked), len(d.ok), d.dups, len(d.corrupt),
                d.stray, counters.get("dead"), counters.get("retried"),
                json.dumps(ledger.statuses(), sort_keys=True), (" " + extra) if extra else ""))
    print(line, flush=True)


def check_delivery(ledger, d, allow_unacked=True):
    """Acknowledged events all arrived, byte-identical; duplicates are at-least-once and only counted."""
    H.check(not ledger.bad_ids(), "2xx answers with a wrong id: %s" % ledger.bad_ids()[:3])
    H.check(not d.missing, "%d acknowledged events never reached the upstream (e.g. %s)" % (
        len(d.missing), d.missing[:3]))
    H.check(not d.corrupt, "%d events arrived with different body bytes (e.g. %s)" % (
        len(d.corrupt), d.corrupt[:3]))
    H.check(not d.stray, "%d 2xx upstream requests carry no event id we sent" % d.stray)
    if not allow_unacked:
        H.check(not d.unacked_delivered, "%d events answered non-2xx to the SDK were forwarded anyway "
                "(e.g. %s: %s)" % (len(d.unacked_delivered), d.unacked_delivered[:2],
                                   [ledger.answer[e] for e in d.unacked_delivered[:2]]))


def run(ns):
    H.main(ns)
