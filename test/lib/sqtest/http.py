"""http.py - a raw HTTP/1.1 client on 127.0.0.1, a keep-alive connection, Sentry auth parsing, and
the checks every ingest answer shares (CORS headers, JSON error bodies)."""

import http.client
import json
import socket

from sqtest.proc import check

CORS_ALLOW_HEADERS = ("x-sentry-auth", "content-type", "content-encoding")
CORS_EXPOSE_HEADERS = ("x-sentry-rate-limits", "retry-after", "x-sentry-error")


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


# ------------------------------------------------------------ Sentry auth

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


# ------------------------------------------------------------ CORS and error answers

def header_tokens(value):
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


def check_cors(r, what):
    """The CORS headers Sentry puts on every ingest answer, success or error."""
    check(r.header("Access-Control-Allow-Origin") == "*",
          "%s: Access-Control-Allow-Origin %r" % (what, r.header("Access-Control-Allow-Origin")))
    exp = header_tokens(r.header("Access-Control-Expose-Headers"))
    missing = [h for h in CORS_EXPOSE_HEADERS if h not in exp]
    check(not missing, "%s: Access-Control-Expose-Headers %r lacks %s" % (
        what, r.header("Access-Control-Expose-Headers"), missing))


def check_preflight(r, what):
    check(r.status in (200, 204), "%s: preflight answered %r" % (what, r))
    check_cors(r, what)
    allow = header_tokens(r.header("Access-Control-Allow-Headers"))
    missing = [h for h in CORS_ALLOW_HEADERS if h not in allow]
    check(not missing, "%s: Access-Control-Allow-Headers %r lacks %s" % (
        what, r.header("Access-Control-Allow-Headers"), missing))
    methods = header_tokens(r.header("Access-Control-Allow-Methods"))
    check("post" in methods, "%s: Access-Control-Allow-Methods %r" % (what, r.header("Access-Control-Allow-Methods")))


def expect_json_error(r, status, what):
    check(r.status == status, "%s: want %d, got %r" % (what, status, r))
    check((r.header("Content-Type") or "").startswith("application/json"),
          "%s: Content-Type %r" % (what, r.header("Content-Type")))
    doc = r.json()
    check(isinstance(doc, dict) and isinstance(doc.get("detail"), str) and doc["detail"],
          "%s: no detail in %r" % (what, r.body[:200]))
    check_cors(r, what + " (error answer)")
    return doc
