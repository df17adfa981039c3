"""harness.py - processes and helpers for the sentryq integration tests (standard library only).

Starts redis-server, the mock upstream and sentryq on free 127.0.0.1 ports, replays fixtures,
decodes bodies, and runs the test_* functions of a test file (harness.main(globals())).
Every process started here is killed at exit, even when a test fails; temp dirs are removed.
"""

import atexit
import base64
import glob
import gzip
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("SENTRYQ_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("SENTRYQ_BIN") or os.path.join(SOURCE_ROOT, "build", "sentryq")
FIXTURES = os.environ.get("SENTRYQ_FIXTURES") or os.path.join(
    SOURCE_ROOT, "..", "shared", "fixtures", "sdk-requests")
MOCK = os.path.join(SOURCE_ROOT, "test", "mock_upstream.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
HEX32 = re.compile(r"^[0-9a-f]{32}$")

_procs = []      # every Popen started, killed at exit
_tmpdirs = []    # every temp dir made, removed at exit
_sentryqs = []   # live Sentryq objects, whose logs are printed when a test fails
_exits = []      # (signal, exit code, log) of every graceful stop
_cli_reports = []  # sanitizer reports seen in run_cli output
SANITIZER = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|AddressSanitizer")


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def tmpdir(prefix="sentryq-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    _procs.append(p)
    return p


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_for(cond, timeout, what, interval=0.02):
    """Poll cond() until it returns a truthy value (returned) or timeout seconds pass (fails)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except (OSError, http.client.HTTPException, ValueError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.1fs waiting for %s%s" % (
                timeout, what, " (last error: %r)" % last_exc if last_exc else ""))
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.25)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- Redis (RESP2 client + server)

class RedisError(Exception):
    pass


class RespClient:
    """Minimal blocking RESP2 client: command(*args) -> parsed reply (bytes, int, list, None)."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError("bad RESP reply type %r" % line[:20])

    def command(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, (int, float)):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        r = self._reply()
        if isinstance(r, RedisError):
            raise r
        return r


class Redis:
    def __init__(self, port=None, dir=None):
        self.port = port or free_port()
        self.dir = dir or tmpdir("sentryq-redis-")
        self.proc = None
        self.log = os.path.join(self.dir, "redis.log")

    def start(self, timeout=10):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir,
                "--logfile", self.log]
        self.proc = spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ping, timeout, "redis PING on port %d" % self.port)
        return self

    def _ping(self):
        check(self.proc.poll() is None, "redis-server exited with %s" % self.proc.returncode)
        c = RespClient(self.port, timeout=1.0)
        try:
            return c.command("PING") == b"PONG"
        except RedisError:  # LOADING while the AOF is read back
            return False
        finally:
            c.close()

    def client(self):
        return RespClient(self.port)

    def command(self, *args):
        c = RespClient(self.port)
        try:
            return c.command(*args)
        finally:
            c.close()

    def stop(self, timeout=10):
        """Graceful stop (SIGTERM); the AOF keeps what was acknowledged."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=timeout)
        wait_for(lambda: not port_open(self.port), timeout, "redis port %d to close" % self.port)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


# ---------------------------------------------------------------- HTTP client

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers      # [(name, value), ...]
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %r>" % (self.status, self.body[:300])


def request(port, method, target, headers=(), body=b"", chunked=False, timeout=15.0,
            chunk_size=8192, host=None):
    """Send one request on a fresh connection and read the answer, even when the server
    answers (e.g. 413) before it has read the whole body."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % (host or "127.0.0.1:%d" % port)]
        for k, v in headers:
            lines.append("%s: %s" % (k, v))
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        elif body or method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: %d" % len(body))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if chunked:
            parts = [b"%x\r\n%s\r\n" % (len(body[i:i + chunk_size]), body[i:i + chunk_size])
                     for i in range(0, len(body), chunk_size)]
            payload = head + b"".join(parts) + b"0\r\n\r\n"
        else:
            payload = head + body
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the answer may already be waiting
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        data = resp.read()
        return Response(resp.status, resp.getheaders(), data)
    finally:
        sock.close()


def get_json(port, path, timeout=5.0):
    r = request(port, "GET", path, timeout=timeout)
    return r.status, json.loads(r.body) if r.body else None


# ---------------------------------------------------------------- mock upstream

class Mock:
    def __init__(self, tls_cert=None, tls_key=None, latency_ms=None):
        self.tls = (tls_cert, tls_key)
        self.latency_ms = latency_ms
        self.proc = None
        self.port = None

    def start(self, timeout=10):
        args = [PYTHON, MOCK, "--port", "0"]
        if self.tls[0]:
            args += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1] or self.tls[0]]
        if self.latency_ms:
            args += ["--latency-ms", str(self.latency_ms)]
        self.proc = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + timeout
        # READY arrives on stdout; readline blocks, so bound it with select
        buf = ""
        while "\n" not in buf:
            left = deadline - time.monotonic()
            check(left > 0 and self.proc.poll() is None, "mock upstream did not print READY")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                ch = self.proc.stdout.readline()
                check(ch, "mock upstream exited before READY")
                buf += ch
        m = re.match(r"READY (\d+)", buf)
        check(m, "unexpected mock output %r" % buf)
        self.port = int(m.group(1))
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _post(self, path, doc):
        r = request(self.port, "POST", path, [("Content-Type", "application/json")],
                    json.dumps(doc).encode())
        check(r.status == 200, "mock %s failed: %r" % (path, r))

    def reset(self):
        self._post("/__mock/reset", {})

    def program(self, rules=None, default=None):
        doc = {"rules": rules or []}
        if default is not None:
            doc["default"] = default
        self._post("/__mock/program", doc)

    def requests(self, since=0):
        r = request(self.port, "GET", "/__mock/requests" + ("?since=%d" % since if since else ""))
        check(r.status == 200, "mock requests failed: %r" % r)
        return json.loads(r.body)

    def count(self):
        return get_json(self.port, "/__mock/count")[1]["count"]

    def wait_count(self, n, timeout=20):
        wait_for(lambda: self.count() >= n, timeout, "mock to record %d requests" % n)
        return self.requests()


def rec_header(rec, name):
    """All values of a header in a mock record (case-insensitive name)."""
    return [v for k, v in rec["headers"] if k.lower() == name.lower()]


def rec_body(rec):
    return base64.b64decode(rec["body_b64"])


# ---------------------------------------------------------------- sentryq

CONFIG_TEMPLATE = """\
listen = {{ address = "127.0.0.1"; port = {port}; max_body_size = {max_body}; }};
redis  = {{ host = "127.0.0.1"; port = {redis_port}; prefix = "{prefix}"; buffer_bytes = {buffer_bytes}; }};
forward = {{ timeout = {fwd_timeout}; retry_initial = {retry_initial}; retry_max = {retry_max};
            claim_idle = {claim_idle}; }};
upstreams = (
{upstreams}
);
{extra}
"""


def project_conf(name, key, id, secret=None):
    s = '{ name = "%s"; key = "%s"; id = %d; ' % (name, key, id)
    if secret:
        s += 'secret = "%s"; ' % secret
    return s + "}"


def upstream_conf(name, url, projects):
    return '  { name = "%s"; url = "%s";\n    projects = ( %s ); }' % (
        name, url, ",\n      ".join(projects))


def make_config(port, redis_port, upstreams, prefix="sentryq:", max_body=20971520, buffer_bytes=0,
                fwd_timeout=5.0, retry_initial=0.2, retry_max=1.0, claim_idle=2.0, extra=""):
    return CONFIG_TEMPLATE.format(port=port, redis_port=redis_port, prefix=prefix, max_body=max_body,
                                  buffer_bytes=buffer_bytes, fwd_timeout=fwd_timeout,
                                  retry_initial=retry_initial, retry_max=retry_max,
                                  claim_idle=claim_idle, upstreams=",\n".join(upstreams), extra=extra)


class Sentryq:
    def __init__(self, bin=None):
        self.bin = bin or BIN
        self.dir = tmpdir("sentryq-run-")
        self.proc = None
        self.port = None
        self.config_path = None
        self.logs = []  # one stderr file per start
        self.secrets = set()  # credentials of every config started: must never reach the log
        _sentryqs.append(self)

    def write_config(self, text, name="sentryq.conf"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, config_text, port=None, wait=True, timeout=15, env=None):
        """Run `sentryq -c` on config_text; port defaults to listen.port of the text."""
        if port is None:
            m = re.search(r"listen\s*[=:]\s*\{[^}]*?\bport\s*[=:]\s*(\d+)", config_text)
            check(m, "no listen.port in the config text")
            port = int(m.group(1))
        self.port = port
        self.config_path = self.write_config(config_text)
        self.secrets |= config_secrets(config_text)
        log = os.path.join(self.dir, "stderr-%d.log" % (len(self.logs) + 1))
        self.logs.append(log)
        with open(log, "wb") as errf:
            self.proc = spawn([self.bin, "-c", self.config_path], stdin=subprocess.DEVNULL,
                              stdout=errf, stderr=errf, env=env)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=15):
        def ready():
            check(self.proc.poll() is None, "sentryq exited with %s during start-up" % self.proc.returncode)
            return self.status()[0] == 200
        wait_for(ready, timeout, "sentryq /status 200 on port %d" % self.port)

    def status(self):
        return get_json(self.port, "/status")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Send sig and wait (bounded) for the exit; returns the exit code."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
            _exits.append((sig, rc, self.logs[-1] if self.logs else "?"))
            return rc
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise TestFailure("sentryq did not exit within %ss of signal %s" % (timeout, sig))

    def kill9(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_text(self, limit=20000):
        out = []
        for path in self.logs:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            text = data.decode("utf-8", "replace")
            if len(text) > limit:
                text = "...(%d bytes cut)...\n" % (len(text) - limit) + text[-limit:]
            out.append("--- %s ---\n%s" % (os.path.basename(path), text))
        return "\n".join(out)


def run_cli(args, timeout=15, env=None, input=None):
    """Run sentryq with args to completion (bounded); returns CompletedProcess (text)."""
    p = spawn([BIN] + list(args), stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        raise TestFailure("sentryq %s did not exit within %ss" % (" ".join(args), timeout))
    res = subprocess.CompletedProcess(p.args, p.returncode, out.decode("utf-8", "replace"),
                                      err.decode("utf-8", "replace"))
    m = SANITIZER.search(res.stderr)
    if m:
        _cli_reports.append("sentryq %s:\n%s" % (" ".join(args), res.stderr[max(0, m.start() - 200):][:4000]))
    return res


# ---------------------------------------------------------------- fixtures and bodies

def load_fixtures(pattern="*.json"):
    out = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, pattern))):
        with open(path) as f:
            d = json.load(f)
        d["name"] = os.path.basename(path)[:-5]
        d["body"] = base64.b64decode(d["body_b64"])
        out.append(d)
    check(out, "no fixtures found in %s" % FIXTURES)
    return out


def fx_header(fx, name):
    for k, v in fx["headers"]:
        if k.lower() == name.lower():
            return v
    return None


DROP_ON_REPLAY = {"host", "content-length", "transfer-encoding"}


def replay(fx, port, overrides=None, chunked=None, timeout=15.0):
    """Replay a fixture. overrides: {"path", "query", "body", "headers": {name: value or None}}
    (header names matched case-insensitively; None removes, new names are appended)."""
    overrides = overrides or {}
    path = overrides.get("path", fx["path"])
    query = overrides.get("query", fx["query"])
    body = overrides.get("body", fx["body"])
    hdr_over = {k.lower(): (k, v) for k, v in overrides.get("headers", {}).items()}
    headers = []
    for k, v in fx["headers"]:
        lk = k.lower()
        if lk in DROP_ON_REPLAY:
            continue
        if lk in hdr_over:
            name, val = hdr_over.pop(lk)
            if val is not None:
                headers.append((k, val))
            continue
        headers.append((k, v))
    headers += [(k, v) for k, v in hdr_over.values() if v is not None]
    target = path + ("?" + query if query else "")
    if chunked is None:
        chunked = bool(fx.get("chunked"))
    return request(port, fx["method"], target, headers, body, chunked=chunked, timeout=timeout)


class KeepAlive:
    """One persistent HTTP/1.1 connection for several requests (SDKs reuse sockets)."""

    def __init__(self, port, timeout=15.0):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def close(self):
        self.conn.close()

    def send(self, method, target, headers=(), body=b"", chunked=False):
        c = self.conn
        c.putrequest(method, target, skip_accept_encoding=True)
        for k, v in headers:
            c.putheader(k, v)
        if chunked:
            c.putheader("Transfer-Encoding", "chunked")
            c.endheaders()
            for i in range(0, len(body), 8192):
                part = body[i:i + 8192]
                c.send(b"%x\r\n%s\r\n" % (len(part), part))
            c.send(b"0\r\n\r\n")
        else:
            c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        return Response(r.status, r.getheaders(), data)

    def replay(self, fx, chunked=None):
        headers = [(k, v) for k, v in fx["headers"] if k.lower() not in DROP_ON_REPLAY]
        target = fx["path"] + ("?" + fx["query"] if fx["query"] else "")
        return self.send(fx["method"], target, headers, fx["body"],
                         bool(fx.get("chunked")) if chunked is None else chunked)


def decode_body(body, content_encoding):
    ce = (content_encoding or "").strip().lower()
    if ce in ("", "identity"):
        return body
    if ce in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if ce == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -15)
    raise ValueError("unsupported Content-Encoding %r" % ce)


def split_envelope(body):
    """(header_line, rest): rest starts after the first '\\n' (b"" if none)."""
    i = body.find(b"\n")
    if i < 0:
        return body, b""
    return body[:i], body[i + 1:]


def ordered_json(data):
    """Parse JSON keeping object key order (objects become lists of pairs)."""
    return json.loads(data, object_pairs_hook=lambda pairs: [(k, v) for k, v in pairs])


def parse_sentry_auth(value):
    """'Sentry k=v, k=v' -> [(k, v), ...] in order (value = text up to the next comma)."""
    check(value[:7].lower() == "sentry ", "auth header lacks 'Sentry ' prefix: %r" % value)
    pairs = []
    for part in value[7:].split(","):
        part = part.strip()
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((k.strip(), v.strip()))
    return pairs


def query_pairs(query):
    return [tuple(p.partition("=")[::2]) for p in query.split("&") if p] if query else []


def status_counters(sq):
    st, doc = sq.status()
    return doc.get("counters", {})


def new_event_id():
    return os.urandom(16).hex()


# ---------------------------------------------------------------- runner

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
        _print_logs()
        print("0 passed, %d failed" % max(1, len(tests)), flush=True)
        _cleanup()
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
                _print_logs()
            else:
                passed += 1
                print("ok - %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
    finally:
        if teardown:
            try:
                teardown()
            except Exception:
                print("teardown_module raised:\n" + traceback.format_exc(), flush=True)
        for sq in _sentryqs:
            if sq.alive():
                sq.stop()
        bad = _process_health()
        if bad:
            failed += 1
            print("FAIL - sentryq_process_health\n" + bad, flush=True)
        elif tests:
            passed += 1
            print("ok - sentryq_process_health", flush=True)
        _cleanup()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed or not passed else 0)


def config_secrets(text):
    """Real keys, secrets, Redis passwords and project names (the DSN secrets users were given)."""
    out = set(re.findall(r'\b(?:key|secret|password)\s*=\s*"([^"]{8,})"', text))
    out |= set(re.findall(r'\{\s*name\s*=\s*"([^"]{5,})"\s*;\s*key\s*=', text))
    return out


def _leaked(text, secrets):
    for sec in sorted(secrets):
        if re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(sec), text):
            return sec
    return None


def _process_health():
    """Every graceful stop exited 0, no sentryq log holds a sanitizer report or a credential."""
    out = list(_cli_reports)
    for sig, rc, log in _exits:
        if rc != 0:
            out.append("sentryq exited %s after signal %s (%s)" % (rc, sig, log))
    for sq in _sentryqs:
        for path in sq.logs:
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            m = SANITIZER.search(text)
            if m:
                out.append("sanitizer report in %s:\n%s" % (path, text[max(0, m.start() - 200):m.start() + 4000]))
            sec = _leaked(text, sq.secrets)
            if sec:
                out.append("a credential from the config (%s...) appears in %s" % (sec[:3], path))
    return "\n".join(out)


_printed = {}


def _print_logs():
    """Print the sentryq stderr written since the last print, so a failure shows its context."""
    for sq in _sentryqs:
        for path in sq.logs:
            try:
                with open(path, "rb") as f:
                    f.seek(_printed.get(path, 0))
                    data = f.read()
                    _printed[path] = f.tell()
            except OSError:
                continue
            if data:
                text = data.decode("utf-8", "replace")
                if len(text) > 12000:
                    text = "...(cut)...\n" + text[-12000:]
                print("--- sentryq stderr %s ---\n%s--- end ---" % (path, text), flush=True)
