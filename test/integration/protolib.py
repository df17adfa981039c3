"""protolib.py - what the protocol, TLS and real-SDK tests share on top of harness.py.

Adds: the standard two-project config, CORS checks, body codecs (gzip/deflate in Python, br and
zstd through the `brotli` / `zstd` command-line tools), peak RSS of a process, a mock upstream on a
fixed port (for restarts), a test CA with server certificates made by the `openssl` CLI, a clean
environment for SDK subprocesses, and bounded subprocess runs.
"""

import gzip
import http.client
import json
import os
import re
import select
import shutil
import ssl
import struct
import subprocess
import time
import zlib

import harness as H

# Relay-side names the SDKs use, and the real credentials sentryq must substitute.
KEY_VOD, SEC_VOD, ID_VOD = "a6f431e198734105aef464f6e702351f", "563b78f7bc1941828df0e5ebd79cc17a", 20
KEY_WEB, SEC_WEB, ID_WEB = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf", "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", 1
AUTH_VOD = "Sentry sentry_key=wow, sentry_version=7, sentry_client=proto-test/1.0, sentry_secret=vod_be"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

CORS_ALLOW_HEADERS = ("x-sentry-auth", "content-type", "content-encoding")
CORS_EXPOSE_HEADERS = ("x-sentry-rate-limits", "retry-after", "x-sentry-error")


def standard_upstreams(url):
    """Upstream "wow": vod_be (rule 1: wow + secret vod_be -> id 20) and web (rule 2: wow + id 1)."""
    return [H.upstream_conf("wow", url, [H.project_conf("vod_be", KEY_VOD, ID_VOD, SEC_VOD),
                                         H.project_conf("web", KEY_WEB, ID_WEB, SEC_WEB)])]


def start_stack(S, extra="", max_body=20971520, upstreams=None, mock=None):
    """Redis + mock + sentryq into the dict S (keys redis, mock, port, sq)."""
    if "redis" not in S:
        S["redis"] = H.Redis().start()
    S["mock"] = mock or H.Mock().start()
    S["port"] = H.free_port()
    ups = upstreams or standard_upstreams(S["mock"].url)
    cfg = H.make_config(S["port"], S["redis"].port, ups, max_body=max_body, extra=extra)
    S["sq"] = H.Sentryq().start(cfg, S["port"])
    return S


# ------------------------------------------------------------ CORS

def header_tokens(value):
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


def check_cors(r, what):
    """The CORS headers Sentry puts on every ingest answer, success or error."""
    H.check(r.header("Access-Control-Allow-Origin") == "*",
            "%s: Access-Control-Allow-Origin %r" % (what, r.header("Access-Control-Allow-Origin")))
    exp = header_tokens(r.header("Access-Control-Expose-Headers"))
    missing = [h for h in CORS_EXPOSE_HEADERS if h not in exp]
    H.check(not missing, "%s: Access-Control-Expose-Headers %r lacks %s" % (
        what, r.header("Access-Control-Expose-Headers"), missing))


def check_preflight(r, what):
    H.check(r.status in (200, 204), "%s: preflight answered %r" % (what, r))
    check_cors(r, what)
    allow = header_tokens(r.header("Access-Control-Allow-Headers"))
    missing = [h for h in CORS_ALLOW_HEADERS if h not in allow]
    H.check(not missing, "%s: Access-Control-Allow-Headers %r lacks %s" % (
        what, r.header("Access-Control-Allow-Headers"), missing))
    methods = header_tokens(r.header("Access-Control-Allow-Methods"))
    H.check("post" in methods, "%s: Access-Control-Allow-Methods %r" % (what, r.header("Access-Control-Allow-Methods")))


def expect_json_error(r, status, what):
    H.check(r.status == status, "%s: want %d, got %r" % (what, status, r))
    H.check((r.header("Content-Type") or "").startswith("application/json"),
            "%s: Content-Type %r" % (what, r.header("Content-Type")))
    doc = r.json()
    H.check(isinstance(doc, dict) and isinstance(doc.get("detail"), str) and doc["detail"],
            "%s: no detail in %r" % (what, r.body[:200]))
    check_cors(r, what + " (error answer)")
    return doc


# ------------------------------------------------------------ codecs

CODECS = ("gzip", "deflate", "br", "zstd")
_TOOLS = {"br": "brotli", "zstd": "zstd"}


def need_tool(name):
    path = shutil.which(name)
    H.check(path, "the `%s` command is missing: scripts/install-deps --test installs it "
            "(Debian package %s)" % (name, name))
    return path


def _run_filter(args, data, timeout=120):
    p = H.spawn(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate(timeout=10)
        raise H.TestFailure("%s took over %ss" % (args[0], timeout))
    H.check(p.returncode == 0, "%s failed (%s): %r" % (" ".join(args), p.returncode, err[:300]))
    return out


def encode(codec, data):
    if codec == "gzip":
        return gzip.compress(data)
    if codec == "deflate":
        return zlib.compress(data)
    if codec == "br":
        return _run_filter([need_tool("brotli"), "-c", "-q", "5"], data)
    if codec == "zstd":
        return _run_filter([need_tool("zstd"), "-c", "-q", "-3"], data)
    raise ValueError(codec)


def decode(codec, data):
    if codec in ("gzip", "deflate", None, ""):
        return H.decode_body(data, codec)
    if codec == "br":
        return _run_filter([need_tool("brotli"), "-d", "-c"], data)
    if codec == "zstd":
        return _run_filter([need_tool("zstd"), "-d", "-c", "-q"], data)
    raise ValueError(codec)


def _deflate_zeros(size):
    """Raw deflate of `size` zero bytes (size a multiple of 1 MiB): one fully flushed block of
    1 MiB repeated, so building a 1 GiB bomb costs one 1 MiB compression."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * (size >> 20) + b"\x03\x00"  # then an empty final block


def zeros_bomb(codec, size):
    """`size` zero bytes (a multiple of 1 MiB) compressed with codec, a valid stream."""
    assert size % (1 << 20) == 0
    if codec in ("gzip", "deflate"):
        crc, adler, chunk = 0, 1, bytes(1 << 20)
        for _ in range(size >> 20):
            if codec == "gzip":
                crc = zlib.crc32(chunk, crc)
            else:
                adler = zlib.adler32(chunk, adler)
        raw = _deflate_zeros(size)
        if codec == "gzip":
            return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + raw +
                    struct.pack("<II", crc, size & 0xffffffff))
        return b"\x78\xda" + raw + struct.pack(">I", adler)
    tool = need_tool(_TOOLS[codec])
    args = [tool, "-c", "-q", "5"] if codec == "br" else [tool, "-c", "-q", "-3"]
    p = H.spawn(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    # the compressed output of zeros is tiny, so the pipe never fills while we write
    chunk = bytes(1 << 20)
    for _ in range(size >> 20):
        p.stdin.write(chunk)
    p.stdin.close()
    out = p.stdout.read()
    H.check(p.wait(timeout=60) == 0, "%s bomb compression failed" % tool)
    return out


def parse_envelope(body):
    """(header dict, [(item header dict, payload bytes)]) of a decoded envelope."""
    hdr, rest = H.split_envelope(body)
    items = []
    while rest:
        ih, rest = H.split_envelope(rest)
        if not ih.strip():
            continue
        item = json.loads(ih)
        n = item.get("length")
        if n is None:
            payload, rest = H.split_envelope(rest)
        else:
            H.check(len(rest) >= n, "item %r runs past the end of the envelope" % item)
            payload, rest = rest[:n], rest[n:]
            H.check(rest[:1] in (b"", b"\n"), "no newline after a %d-byte item" % n)
            rest = rest[1:]
        items.append((item, payload))
    return json.loads(hdr), items


# ------------------------------------------------------------ processes

def vm_hwm_kib(pid):
    """Peak resident set size (VmHWM) of a process, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise H.TestFailure("no VmHWM for pid %d" % pid)


def is_sanitized(binary):
    """True when the binary was built with AddressSanitizer (its shadow memory inflates RSS)."""
    try:
        with open(binary, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def sdk_env(extra=None):
    """Environment for SDK subprocesses: no proxy variables (traffic must go to 127.0.0.1 directly)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


def run_bounded(args, timeout, env=None, cwd=None, input=None):
    """Run to completion with a deadline; returns (returncode, stdout, stderr) as text."""
    p = H.spawn(args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        raise H.TestFailure("%s did not finish within %ss\nstdout: %s\nstderr: %s" % (
            " ".join(args[:3]), timeout, out.decode(errors="replace")[-2000:],
            err.decode(errors="replace")[-2000:]))
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


class FixedMock(H.Mock):
    """harness.Mock on a port chosen in advance (port None: any free one), so it can be restarted
    where sentryq expects it. With tls_cert, ca_file must be given: the control API (/__mock/...)
    is then spoken over https, its chain verified against that CA."""

    def __init__(self, port=None, tls_cert=None, tls_key=None, ca_file=None):
        super().__init__(tls_cert=tls_cert, tls_key=tls_key)
        self.fixed_port = port
        self.ca_file = ca_file

    def start(self, timeout=10):
        if self.fixed_port is None:
            super().start(timeout)
            self.fixed_port = self.port
            return self
        args = [H.PYTHON, H.MOCK, "--port", str(self.fixed_port)]
        if self.tls[0]:
            args += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1] or self.tls[0]]
        self.proc = H.spawn(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while not line.endswith("\n"):
            left = deadline - time.monotonic()
            H.check(left > 0 and self.proc.poll() is None, "mock on port %d did not start" % self.fixed_port)
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = self.proc.stdout.readline()
                H.check(chunk, "mock exited before READY (port %d taken?)" % self.fixed_port)
                line += chunk
        H.check(line.strip() == "READY %d" % self.fixed_port, "unexpected mock output %r" % line)
        self.port = self.fixed_port
        return self

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls[0] else "http", self.port)

    def _control(self, method, path, doc=None):
        if not self.tls[0]:
            body = json.dumps(doc).encode() if doc is not None else b""
            r = H.request(self.port, method, path, [("Content-Type", "application/json")] if body else [], body)
            return r.status, r.body
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.check_hostname = False  # test plumbing: the chain is still verified
        c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=ctx)
        try:
            body = json.dumps(doc).encode() if doc is not None else None
            c.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def _post(self, path, doc):
        st, body = self._control("POST", path, doc)
        H.check(st == 200, "mock %s failed: %s %r" % (path, st, body[:200]))

    def requests(self, since=0):
        st, body = self._control("GET", "/__mock/requests" + ("?since=%d" % since if since else ""))
        H.check(st == 200, "mock requests failed: %s" % st)
        return json.loads(body)

    def count(self):
        st, body = self._control("GET", "/__mock/count")
        H.check(st == 200, "mock count failed: %s" % st)
        return json.loads(body)["count"]


def wait_record(mock, pred, what, timeout=15):
    """The first mock record for which pred(rec) is true."""
    def find():
        for rec in mock.requests():
            if pred(rec):
                return rec
        return None
    return H.wait_for(find, timeout, what)


# ------------------------------------------------------------ TLS

def _openssl(args, cwd):
    rc, out, err = run_bounded([need_tool("openssl")] + args, 60, cwd=cwd)
    H.check(rc == 0, "openssl %s failed: %s" % (args[0], err[-1000:]))


def make_ca(d, name="sentryq test CA"):
    """A self-signed CA in d: (ca.pem, ca.key)."""
    _openssl(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=" + name,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    return os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")


def make_server_cert(d, stem, sans, cn="localhost"):
    """A server certificate signed by d/ca.pem for sans (e.g. "IP:127.0.0.1,DNS:localhost")."""
    with open(os.path.join(d, stem + ".ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n" % sans)
    _openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", stem + ".key", "-out", stem + ".csr", "-subj", "/CN=" + cn], d)
    _openssl(["x509", "-req", "-in", stem + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-CAcreateserial", "-out", stem + ".pem", "-days", "2", "-extfile", stem + ".ext"], d)
    return os.path.join(d, stem + ".pem"), os.path.join(d, stem + ".key")
