"""attack.py - what the hostile suite (test/hostile/) shares: the stack at the shipped listen
defaults, raw connections and the answers read back off them, a /status poller and a small-event
sender in processes of their own (poller.py), delivery checks, and the `# HOSTILE` figure lines.

SENTRYQ_LEGACY=1 runs the same attacks against a sentryq from before the listener hardening (no
listen.max_body_memory, max_connections, head_timeout or min_body_rate keys, no "listen" block
in /status): the config leaves those keys out and tests that need them say so and skip. The
figures are printed before the assertions, so a legacy run that fails still reports them; with
HOSTILE_FIGURES=FILE each figure line is appended to FILE as well."""

import http.client
import io
import json
import os
import resource
import socket
import subprocess
import time
import uuid

from sqtest.http import request
from sqtest.mock import Mock, rec_body, rec_header
from sqtest.proc import PYTHON, check, free_port, spawn, wait_for
from sqtest.resp import Redis
from sqtest.sentryq import (AUTH_VOD, ID_VOD, ID_WEB, KEY_VOD, KEY_WEB, SEC_VOD, Sentryq, make_config,
                            standard_upstreams)

LEGACY = os.environ.get("SENTRYQ_LEGACY") == "1"
LISTEN_KEYS = ("max_body_memory", "listen_max_connections", "head_timeout", "min_body_rate")
POLLER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "poller.py")
STATUS_BOUND_MS = 50.0   # /status must answer within this during and after every attack
# The shipped defaults of etc/sentryq.conf the attacks are measured against.
HEAD_TIMEOUT = 5.0
MIN_BODY_RATE = 1024.0
MAX_BODY_MEMORY = 256 << 20
# Relay-side credentials: the victim is project "web" (key only, id 1), the attacker uses vod_be.
AUTH_WEB = "Sentry sentry_key=wow, sentry_version=7, sentry_client=hostile-victim/1.0"


def figure(attack, text):
    line = "# HOSTILE %s%s: %s" % (attack, " (before)" if LEGACY else "", text)
    print(line, flush=True)
    out = os.environ.get("HOSTILE_FIGURES")
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def skip_legacy(what):
    """True (and a comment line) when the legacy binary cannot take this attack's setup."""
    if LEGACY:
        print("# SKIP (legacy binary): %s" % what, flush=True)
    return LEGACY


def nofile(n):
    """A preexec_fn: the child's RLIMIT_NOFILE, soft and hard, lowered to n (sentryq raises the
    soft limit to the hard one, so both must be low)."""
    def f():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return f


class Stack:
    """Redis, the mock upstream and one sentryq at the shipped listen defaults; settings override
    make_config keywords (max_body=None: sentryq's own default, 200 MiB)."""

    def __init__(self):
        self.redis = Redis().start()
        self.mock = Mock().start()
        self.sq = None
        self.port = None

    def start(self, preexec_fn=None, **settings):
        if self.sq is not None and self.sq.alive():
            self.sq.stop()
        self.mock.reset()
        self.port = free_port()
        opts = dict(max_body=None, buffer_bytes=0)
        opts.update(settings)
        if LEGACY:
            for k in LISTEN_KEYS:
                opts.pop(k, None)
        cfg = make_config(self.port, self.redis.port, standard_upstreams(self.mock.url), **opts)
        self.sq = Sentryq().start(cfg, self.port, preexec_fn=preexec_fn)
        return self

    @property
    def pid(self):
        return self.sq.proc.pid

    def status(self, timeout=5.0):
        return self.sq.status()

    def listen(self):
        """The "listen" block of /status (connections, body memory, the filter's counters)."""
        st, doc = self.status()
        return (doc or {}).get("listen", {})

    def log(self):
        return self.sq.log_text(limit=10 ** 7)

    def stop(self):
        if self.sq is not None and self.sq.alive():
            self.sq.stop()
        self.mock.stop()
        self.redis.stop()


# ---------------------------------------------------------------- raw connections and answers

def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_all(s, timeout=5.0, limit=1 << 20):
    """What the peer sends until it closes, or until timeout seconds pass without a byte."""
    s.settimeout(timeout)
    out = b""
    try:
        while len(out) < limit:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def read_until_close(s, timeout):
    """(bytes, closed, seconds): what the peer sent until it closed (closed True) or until
    timeout seconds passed in all (closed False)."""
    t0 = time.monotonic()
    out = b""
    while True:
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            return out, False, time.monotonic() - t0
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return out, True, time.monotonic() - t0
        if not b:
            return out, True, time.monotonic() - t0
        out += b


def open_many(port, n, timeout=10.0):
    """n connected sockets (each connect bounded by timeout); the kernel completes a connection in
    the listen backlog before sentryq accepts it, so this does not wait for sentryq."""
    out = []
    for _ in range(n):
        out.append(connect(port, timeout))
    return out


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def raw(port, data, timeout=5.0, shut=False):
    """Send data on a fresh connection; return what comes back until close (or a quiet timeout)."""
    s = connect(port, timeout)
    try:
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return read_all(s, timeout)
    finally:
        s.close()


class _NoClose(io.BytesIO):
    def close(self):  # http.client closes its file after each answer; the next one follows
        pass


class _Sock:
    def __init__(self, f):
        self.f = f

    def makefile(self, *a, **k):
        return self.f


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%s %r %r>" % (self.status, self.header("Content-Type"), self.body[:200])


def parse_answers(data, methods=()):
    """Every HTTP answer in data, in order (methods: the request methods, for HEAD answers)."""
    f = _NoClose(data)
    out = []
    i = 0
    while f.tell() < len(data):
        r = http.client.HTTPResponse(_Sock(f), method=methods[i] if i < len(methods) else "GET")
        try:
            r.begin()
            body = r.read()
        except (http.client.HTTPException, ValueError, OSError):
            out.append(Answer(None, [], data[f.tell():]))
            break
        out.append(Answer(r.status, r.getheaders(), body))
        i += 1
    return out


def expect_json_detail(a, status, what):
    """An error answer of sentryq's one shape: the status, application/json, {"detail": "..."}."""
    check(a is not None and a.status == status, "%s: want %s, got %r" % (what, status, a))
    check((a.header("Content-Type") or "").startswith("application/json"),
          "%s: Content-Type %r (not JSON: %r)" % (what, a.header("Content-Type"), a.body[:120]))
    try:
        doc = json.loads(a.body)
    except ValueError:
        doc = None
    check(isinstance(doc, dict) and isinstance(doc.get("detail"), str) and doc["detail"],
          "%s: body is not {\"detail\": ...}: %r" % (what, a.body[:200]))
    return doc


# ---------------------------------------------------------------- events and deliveries

def new_eid():
    return uuid.uuid4().hex


def envelope(eid, dsn=None, payload=b'{"message":"hostile victim"}'):
    hdr = {"event_id": eid}
    if dsn:
        hdr["dsn"] = dsn
    item = json.dumps({"type": "event", "length": len(payload)}).encode()
    return json.dumps(hdr).encode() + b"\n" + item + b"\n" + payload + b"\n"


def post_victim(port, timeout=10.0):
    """The victim's legitimate envelope (project web, key only): (eid, answer)."""
    eid = new_eid()
    r = request(port, "POST", "/api/1/envelope/", [("X-Sentry-Auth", AUTH_WEB),
                                                   ("Content-Type", "application/x-sentry-envelope")],
                envelope(eid), timeout=timeout)
    return eid, r


def post_event(port, timeout=10.0):
    """A small valid store event (vod_be): (eid, answer, seconds)."""
    eid = new_eid()
    body = json.dumps({"event_id": eid, "message": "valid event after an attack"}).encode()
    t = time.monotonic()
    r = request(port, "POST", "/api/20/store/", [("X-Sentry-Auth", AUTH_VOD),
                                                 ("Content-Type", "application/json")], body, timeout=timeout)
    return eid, r, time.monotonic() - t


def record_event_id(rec):
    """The event id a forwarded request carries (store body, envelope header, GET sentry_data)."""
    body = rec_body(rec)
    try:
        from sqtest.fixtures import decode
        ce = (rec_header(rec, "Content-Encoding") or [""])[0]
        if ce:
            body = decode(ce, body)
    except Exception:
        pass
    first = body.split(b"\n", 1)[0]
    try:
        doc = json.loads(first)
        if isinstance(doc, dict) and isinstance(doc.get("event_id"), str):
            return doc["event_id"].replace("-", "")
    except ValueError:
        pass
    return None


def record_credentials(rec):
    """(project id from the path, key, secret) a forwarded request carries, wherever the carrier."""
    path = rec["path"]
    parts = [p for p in path.split("/") if p]
    pid = int(parts[1]) if len(parts) > 1 and parts[0] == "api" and parts[1].isdigit() else None
    key = secret = None
    for v in rec_header(rec, "X-Sentry-Auth") + rec_header(rec, "Authorization"):
        for part in v[7:].split(","):
            k, _, val = part.strip().partition("=")
            if k == "sentry_key":
                key = val
            elif k == "sentry_secret":
                secret = val
    for kv in (rec.get("query") or "").split("&"):
        k, _, val = kv.partition("=")
        if k == "sentry_key":
            key = val
        elif k == "sentry_secret":
            secret = val
    return pid, key, secret


# What each relay-side identity must arrive as.
REAL = {"vod_be": (ID_VOD, KEY_VOD, SEC_VOD), "web": (ID_WEB, KEY_WEB, None)}


def wait_delivered(stack, eids, timeout=20):
    """Wait until every eid reached the mock; returns the records."""
    def ready():
        recs = stack.mock.requests()
        got = {record_event_id(r) for r in recs}
        return recs if all(e in got for e in eids) else None
    return wait_for(ready, timeout, "%d events at the mock upstream" % len(eids))


def wait_drained(stack, timeout=20):
    """Every request sentryq queued has been forwarded (queue empty, forwarded == enqueued)."""
    def drained():
        st, doc = stack.status()
        c = doc.get("counters", {})
        return doc.get("queue", {}).get("pending") == 0 and c.get("forwarded") == c.get("enqueued")
    wait_for(drained, timeout, "sentryq's queue to drain")


def valid_request_delivered(stack, attack, timeout=20):
    """After an attack: a valid event gets 200 and reaches the mock. Returns the answer's ms."""
    eid, r, secs = post_event(stack.port)
    check(r.status == 200, "%s: a valid event after the attack answered %r" % (attack, r))
    wait_delivered(stack, [eid], timeout)
    return secs * 1000.0


# ---------------------------------------------------------------- the probes

class Poller:
    """poller.py in a process of its own: kind "status" (GET /status every interval on one
    keep-alive connection, opened now) or "events" (a small store event every interval)."""

    def __init__(self, port, kind="status", interval_ms=5):
        self.p = spawn([PYTHON, "-I", POLLER, kind, str(port), str(interval_ms)], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if line.strip() != "READY":
            self.p.kill()
            check(False, "%s poller did not start: %r %r" % (kind, line, self.p.stderr.read()[:500]))
        self.result = None

    def stop(self):
        if self.result is None:
            self.p.stdin.close()   # its EOF ends the poller, which then prints its result
            self.p.wait(timeout=30)
            out = self.p.stdout.read()
            check(out.strip(), "the poller printed no result: %r" % self.p.stderr.read()[:500])
            self.result = json.loads(out.strip().splitlines()[-1])
        return self.result


def check_status_bound(attack, res, bound=STATUS_BOUND_MS):
    """The worst /status answer of the whole attack under the bound (the machine's load average is
    in the message: on a shared 2-core machine a descheduled poller shows up here too)."""
    check(res["n"] > 0, "%s: the /status poller got no answer at all (%r)" % (attack, res))
    check(res["errors"] == 0, "%s: %d /status polls failed" % (attack, res["errors"]))
    check(res["max_ms"] < bound, "%s: worst /status %.1f ms >= %.0f ms (worst samples [s, ms] %r, n %d, "
          "load average %.1f %.1f %.1f)" % ((attack, res["max_ms"], bound, res["worst"], res["n"]) +
                                            os.getloadavg()))


def status_summary(res):
    return ("worst /status %.1f ms, p99 %.1f ms over %d polls (%d >= 50 ms, %d errors, statuses %s; "
            "load average %.1f)" % (res["max_ms"] or -1, res["p99_ms"] or -1, res["n"], res["over_50ms"],
                                     res["errors"], res["statuses"], os.getloadavg()[0]))
