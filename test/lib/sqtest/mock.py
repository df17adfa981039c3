"""mock.py - the mock Sentry upstream (test/mock_upstream.py, a server program of its own) and its
records."""

import base64
import http.client
import json
import os
import ssl

from sqtest.http import request
from sqtest.proc import PYTHON, SOURCE_ROOT, check, start_ready, wait_for

MOCK = os.path.join(SOURCE_ROOT, "test", "mock_upstream.py")


class Mock:
    """The mock upstream. port None: a free one at the first start, kept across restarts (so it
    can come back where sentryq expects it); else that port. With tls_cert it serves https, and
    its control API (/__mock/...) is spoken over https too, the chain verified against ca_file.
    digest_over: bodies over that many bytes are recorded as their length and sha256 only (and
    their first 64 KiB, "body_head_b64"), hashed as they are read: large uploads cost the mock no
    memory (rec_digest); None keeps every body."""

    def __init__(self, port=None, tls_cert=None, tls_key=None, ca_file=None, latency_ms=None, digest_over=None):
        self.digest_over = digest_over
        self.fixed_port = port
        self.tls = (tls_cert, tls_key)
        self.ca_file = ca_file
        self.latency_ms = latency_ms
        self.proc = None
        self.port = None
        self.earlier = []  # records of earlier runs, kept by stop(keep_records=True)

    def start(self, timeout=10):
        args = [PYTHON, MOCK, "--port", str(self.fixed_port or 0)]
        if self.tls[0]:
            args += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1] or self.tls[0]]
        if self.latency_ms:
            args += ["--latency-ms", str(self.latency_ms)]
        if self.digest_over:
            args += ["--digest-over", str(self.digest_over)]
        self.proc, self.port = start_ready(args, "mock upstream", self.fixed_port, timeout)
        self.fixed_port = self.port
        return self

    @property
    def url(self):
        """Also of a mock made with a fixed port and not started yet (an upstream that is away)."""
        return "%s://127.0.0.1:%d" % ("https" if self.tls[0] else "http", self.port or self.fixed_port)

    def stop(self, keep_records=False):
        """Kill the mock (an upstream gone at once: connections reset, nothing answered). A new
        start() begins with no records; keep_records saves this run's for all_requests()."""
        if self.proc and self.proc.poll() is None:
            if keep_records:
                self.earlier.extend(self.requests())
            self.proc.kill()
            self.proc.wait(timeout=10)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def all_requests(self):
        """The records kept from earlier runs, then the running one's (seq restarts per run)."""
        return list(self.earlier) + (self.requests() if self.alive() else [])

    def _control(self, method, path, doc=None):
        body = json.dumps(doc).encode() if doc is not None else b""
        if not self.tls[0]:
            r = request(self.port, method, path, [("Content-Type", "application/json")] if body else [], body)
            return r.status, r.body
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.check_hostname = False  # test plumbing: the chain is still verified
        c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=ctx)
        try:
            c.request(method, path, body=body or None, headers={"Content-Type": "application/json"} if body else {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def _post(self, path, doc):
        st, body = self._control("POST", path, doc)
        check(st == 200, "mock %s failed: %s %r" % (path, st, body[:200]))
        return json.loads(body) if body else {}

    def reset(self):
        self._post("/__mock/reset", {})

    def program(self, rules=None, default=None):
        """Returns the mock's time.monotonic() at which the program took effect."""
        doc = {"rules": rules or []}
        if default is not None:
            doc["default"] = default
        return self._post("/__mock/program", doc)["t"]

    def pause(self, seconds):
        """Hold every request arriving in the next `seconds` until then (0: end a pause now).
        Returns the mock's (start, end) of the pause, time.monotonic()."""
        doc = self._post("/__mock/pause", {"seconds": seconds})
        return doc["t"], doc["until"]

    def stats(self):
        """{"count", "concurrent", "max_concurrent", "paused_until", "listening_since", "now"}."""
        st, body = self._control("GET", "/__mock/stats")
        check(st == 200, "mock stats failed: %s %r" % (st, body[:200]))
        return json.loads(body)

    def max_reset(self):
        self._post("/__mock/max_reset", {})

    def requests(self, since=0):
        st, body = self._control("GET", "/__mock/requests" + ("?since=%d" % since if since else ""))
        check(st == 200, "mock requests failed: %s %r" % (st, body[:200]))
        return json.loads(body)

    def count(self):
        st, body = self._control("GET", "/__mock/count")
        check(st == 200, "mock count failed: %s" % st)
        return json.loads(body)["count"]

    def wait_count(self, n, timeout=20):
        wait_for(lambda: self.count() >= n, timeout, "mock to record %d requests" % n)
        return self.requests()


def rec_header(rec, name):
    """All values of a header in a mock record (case-insensitive name)."""
    return [v for k, v in rec["headers"] if k.lower() == name.lower()]


def rec_body(rec):
    check("body_b64" in rec, "a mock record of a %s-byte body kept only as its digest (Mock(digest_over=...)): "
          "use rec_digest" % rec.get("body_len"))
    return base64.b64decode(rec["body_b64"])


def rec_digest(rec):
    """(length, sha256 hex) of a record's body, as the mock read it."""
    return rec["body_len"], rec["body_sha256"]


def rec_head(rec):
    """The body, or for a digested one its first 64 KiB."""
    return base64.b64decode(rec["body_b64"] if "body_b64" in rec else rec["body_head_b64"])


def wait_record(mock, pred, what, timeout=15):
    """The first mock record for which pred(rec) is true."""
    def find():
        for rec in mock.requests():
            if pred(rec):
                return rec
        return None
    return wait_for(find, timeout, what)
