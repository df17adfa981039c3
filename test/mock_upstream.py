#!/usr/bin/python3
"""mock_upstream.py - a programmable fake Sentry that records every request sentryq forwards.

Usage: mock_upstream.py --port 0 [--tls-cert C --tls-key K] [--latency-ms N] [--digest-over BYTES]
Prints "READY <port>" once listening on 127.0.0.1. Control API under /__mock/ (never recorded):
  GET  /__mock/requests[?since=SEQ]  recorded requests as a JSON list
  GET  /__mock/count                 {"count": n}
  POST /__mock/reset                 clear records and program, end a pause
  POST /__mock/program               {"rules": [...], "default": {...}} (see README of the tests);
                                     answers {"ok": true, "t": <time.monotonic() it took effect>}
  POST /__mock/pause                 {"seconds": s}: every request arriving from now until now + s
                                     is held until the pause ends, then answered by the program in
                                     force then (a server that hung and recovered); 0 ends a pause
                                     at once. Answers {"ok": true, "t": now, "until": end}
  GET  /__mock/stats                 {"count", "concurrent" (requests being handled now, held ones
                                     included), "max_concurrent" (since the last max_reset),
                                     "paused_until", "listening_since", "now"}: times are time.monotonic()
  POST /__mock/max_reset             max_concurrent := concurrent
Each record: "body_len" and "body_sha256" of the body as it arrived, and the body itself as
"body_b64" - or, for a body over --digest-over bytes (0, the default: never), only its first
DIGEST_HEAD bytes as "body_head_b64" (the body is hashed as it is read, never held: 150 MiB uploads
cost the mock no memory). "arrived" when the request was read, "t" when its answer was decided (later only for a
request held by a pause), "answer_at" when the answer is sent (t + delay + latency).
A response is {"status": N, "headers": {...}, "body": "...", "count": n, "delay": s} or
{"stall": s} (hold, then close without answer) or {"drop": true} (close without answer).
"""

import argparse
import base64
import gzip
import hashlib
import json
import socket
import ssl
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 256 * 1024 * 1024
DIGEST_HEAD = 65536       # bytes kept of a digested body (its envelope header, a multipart head)
READ_PIECE = 1024 * 1024  # a digested body is read and hashed this much at a time
ZERO_ID = "0" * 32


class Program:
    """Rules consumed in order per rule; the last response of a rule repeats forever."""

    def __init__(self, spec=None):
        spec = spec or {}
        self.rules = []
        for rule in spec.get("rules", []):
            responses = rule.get("responses") or [{"status": 200}]
            self.rules.append({"rule": rule, "responses": responses, "idx": 0, "used": 0})
        self.default = spec.get("default") or {"status": 200}

    @staticmethod
    def _matches(rule, method, path, query, body):
        if "path_contains" in rule and rule["path_contains"] not in path:
            return False
        if "query_contains" in rule and rule["query_contains"] not in query:
            return False
        if "method" in rule and rule["method"] != method:
            return False
        if "body_contains" in rule and rule["body_contains"].encode() not in body:
            return False
        return True

    def next_response(self, method, path, query, body):
        for st in self.rules:
            if not self._matches(st["rule"], method, path, query, body):
                continue
            resp = st["responses"][st["idx"]]
            st["used"] += 1
            if st["used"] >= int(resp.get("count", 1)) and st["idx"] < len(st["responses"]) - 1:
                st["idx"] += 1
                st["used"] = 0
            return resp
        return self.default


class State:
    def __init__(self, latency_ms, digest_over=0):
        self.digest_over = digest_over
        self.lock = threading.Lock()
        self.records = []
        self.program = Program()
        self.latency = latency_ms / 1000.0
        self.stopping = threading.Event()
        self.listening_since = None
        self.concurrent = 0        # requests being handled (read, not yet answered), held ones too
        self.max_concurrent = 0
        self.paused_until = 0.0    # time.monotonic(); requests arriving before it wait for it
        self.unpaused = threading.Condition(self.lock)

    def hold_while_paused(self):
        """Block while a pause is in force (it may be extended or ended meanwhile). Bounded by the
        pause itself: every wait is at most until paused_until, which only a control call moves."""
        with self.lock:
            while not self.stopping.is_set():
                left = self.paused_until - time.monotonic()
                if left <= 0:
                    return
                self.unpaused.wait(left)


def event_id_of(body, content_encoding):
    """Event id of a store body or envelope header, for the default 200 answer."""
    try:
        if content_encoding in ("gzip", "x-gzip"):
            body = gzip.decompress(body)
        elif content_encoding == "deflate":
            body = zlib.decompress(body)
        if body[:2] == b"eJ":  # raven: base64(zlib(json))
            body = zlib.decompress(base64.b64decode(body))
        first = body.split(b"\n", 1)[0]
        doc = json.loads(first)
        eid = doc.get("event_id") if isinstance(doc, dict) else None
        if isinstance(eid, str):
            eid = eid.replace("-", "").lower()
            if len(eid) == 32:
                return eid
    except Exception:
        pass
    return ZERO_ID


class BodySink:
    """A request body as it is read: kept whole, or (past digest_over bytes, 0 = never) hashed
    piece by piece with only its head kept."""

    def __init__(self, digest_over):
        self.digest_over = digest_over
        self.parts = []
        self.length = 0
        self.sha = hashlib.sha256()
        self.digested = False

    def read_from(self, rfile, n):
        while n > 0:
            data = rfile.read(min(n, READ_PIECE))
            if not data:
                raise ConnectionError("eof in body")
            n -= len(data)
            self.sha.update(data)
            self.length += len(data)
            self.parts.append(data)
            if self.digest_over and self.length > self.digest_over:
                if not self.digested:
                    self.parts = [b"".join(self.parts)[:DIGEST_HEAD]]
                    self.digested = True
                else:
                    self.parts.pop()

    def result(self):
        return b"".join(self.parts), self.length, self.sha.hexdigest(), self.digested


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-sentry/1"
    sys_version = ""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):  # silence: benchmarks push thousands of requests
        pass

    def _read_body(self):
        """(body, length, sha256 hex, digested): body is the whole body, or only its first
        DIGEST_HEAD bytes when it is over --digest-over (digested)."""
        sink = BodySink(self.server.state.digest_over)
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers up to the empty line
                        t = self.rfile.readline(65537)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                if sink.length + size > MAX_BODY:
                    raise ConnectionError("body too large")
                sink.read_from(self.rfile, size)
                self.rfile.readline(3)
            return sink.result()
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ConnectionError("body too large")
        sink.read_from(self.rfile, n)
        return sink.result()

    def _send(self, status, body, headers=None, ctype="application/json"):
        self.send_response(status)
        sent = set()
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
            sent.add(k.lower())
        if "content-type" not in sent:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        # one write for head and body: two small segments stall on delayed ACKs
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()

    def _control(self, method, path, query, body):
        st = self.server.state
        if path == "/__mock/requests" and method == "GET":
            since = 0
            for kv in query.split("&"):
                if kv.startswith("since="):
                    since = int(kv[6:])
            with st.lock:
                out = [r for r in st.records[since:]] if since else list(st.records)
            return self._send(200, json.dumps(out).encode())
        if path == "/__mock/count" and method == "GET":
            with st.lock:
                n = len(st.records)
            return self._send(200, json.dumps({"count": n}).encode())
        if path == "/__mock/reset" and method == "POST":
            with st.lock:
                st.records = []
                st.program = Program()
                st.paused_until = 0.0
                st.max_concurrent = st.concurrent
                st.unpaused.notify_all()
            return self._send(200, b'{"ok":true}')
        if path == "/__mock/program" and method == "POST":
            try:
                prog = Program(json.loads(body or b"{}"))
            except (ValueError, TypeError, AttributeError) as e:
                return self._send(400, json.dumps({"detail": str(e)}).encode())
            with st.lock:
                st.program = prog
                t = time.monotonic()
            return self._send(200, json.dumps({"ok": True, "t": t}).encode())
        if path == "/__mock/pause" and method == "POST":
            try:
                secs = float(json.loads(body or b"{}").get("seconds", 0))
            except (ValueError, TypeError, AttributeError) as e:
                return self._send(400, json.dumps({"detail": str(e)}).encode())
            if not 0 <= secs <= 3600:
                return self._send(400, b'{"detail":"seconds must be within 0..3600"}')
            with st.lock:
                t = time.monotonic()
                st.paused_until = t + secs
                st.unpaused.notify_all()
            return self._send(200, json.dumps({"ok": True, "t": t, "until": t + secs}).encode())
        if path == "/__mock/stats" and method == "GET":
            with st.lock:
                doc = {"count": len(st.records), "concurrent": st.concurrent, "max_concurrent": st.max_concurrent,
                       "paused_until": st.paused_until, "listening_since": st.listening_since, "now": time.monotonic()}
            return self._send(200, json.dumps(doc).encode())
        if path == "/__mock/max_reset" and method == "POST":
            with st.lock:
                st.max_concurrent = st.concurrent
            return self._send(200, b'{"ok":true}')
        return self._send(404, b'{"detail":"unknown control path"}')

    def _handle(self):
        target = self.path
        path, _, query = target.partition("?")
        try:
            body, length, sha, digested = self._read_body()
        except (ConnectionError, ValueError):
            self.close_connection = True
            return
        if path.startswith("/__mock/"):
            return self._control(self.command, path, query, body)
        st = self.server.state
        arrived = time.monotonic()
        with st.lock:
            st.concurrent += 1
            st.max_concurrent = max(st.max_concurrent, st.concurrent)
        try:
            st.hold_while_paused()
            self._decide_and_answer(st, path, query, (body, length, sha, digested), arrived)
        finally:
            with st.lock:
                st.concurrent -= 1

    def _decide_and_answer(self, st, path, query, read, arrived):
        body, length, sha, digested = read
        with st.lock:
            resp = st.program.next_response(self.command, path, query, body)
            if "stall" in resp:
                action = "stall"
            elif resp.get("drop"):
                action = "drop"
            else:
                action = int(resp.get("status", 200))
            t = time.monotonic()
            delay = self._delay(resp, action)
            st.records.append({
                "seq": len(st.records), "method": self.command, "path": path, "query": query,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_b64" if not digested else "body_head_b64": base64.b64encode(body).decode("ascii"),
                "body_len": length, "body_sha256": sha,
                "status": action, "t": t, "arrived": arrived, "answer_at": t + delay,
            })
        self._answer(resp, action, body, delay)

    def _delay(self, resp, action):
        if action in ("stall", "drop"):
            return 0.0
        delay = float(resp.get("delay", 0))
        if 200 <= action < 300:
            delay += self.server.state.latency
        return delay

    def _answer(self, resp, action, body, delay):
        st = self.server.state
        if action == "stall":
            st.stopping.wait(float(resp["stall"]))
            self.close_connection = True
            return
        if action == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if delay > 0:
            st.stopping.wait(delay)
        if "body" in resp:
            out = resp["body"].encode() if isinstance(resp["body"], str) else json.dumps(resp["body"]).encode()
        elif 200 <= action < 300:
            eid = event_id_of(body, (self.headers.get("Content-Encoding") or "").lower())
            out = json.dumps({"id": eid}).encode()
        else:
            out = json.dumps({"detail": "mock answered %d" % action}).encode()
        self._send(action, out, resp.get("headers"))

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def server_activate(self):
        super().server_activate()
        self.listening_since = time.monotonic()  # listen() returned: connections are accepted from here


def main(argv=None):
    ap = argparse.ArgumentParser(description="programmable mock Sentry upstream")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--digest-over", type=int, default=0)
    args = ap.parse_args(argv)
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = State(args.latency_ms, args.digest_over)
    srv.state.listening_since = srv.listening_since
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key or args.tls_cert)
        # Handshake in the connection's own thread, so one slow client cannot block accept().
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    print("READY %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.state.stopping.set()
        with srv.state.lock:
            srv.state.unpaused.notify_all()
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
