"""fixtures.py - the captured SDK requests (../shared/fixtures/sdk-requests), their replay, body
codecs (gzip/deflate here, br and zstd through the `brotli` / `zstd` command-line tools), envelope
parsing and event ids."""

import base64
import glob
import gzip
import json
import os
import re
import struct
import subprocess
import zlib

from sqtest.http import request
from sqtest.proc import SOURCE_ROOT, TestFailure, check, masked, need_tool, spawn

FIXTURE_DIRS = [os.path.join(SOURCE_ROOT, "..", "shared", "fixtures", "sdk-requests"),
                os.path.join(SOURCE_ROOT, "shared", "fixtures", "sdk-requests")]
FIXTURES = os.environ.get("SENTRYQ_FIXTURES") or next(
    (os.path.normpath(d) for d in FIXTURE_DIRS if os.path.isdir(d)), FIXTURE_DIRS[0])
HEX32 = re.compile(r"^[0-9a-f]{32}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DROP_ON_REPLAY = {"host", "content-length", "transfer-encoding"}


def new_event_id():
    return os.urandom(16).hex()


# ------------------------------------------------------------ fixtures and replay

def _load(path):
    with open(path) as f:
        d = json.load(f)
    d["name"] = os.path.basename(path)[:-5]
    d["body"] = base64.b64decode(d["body_b64"])
    return d


def load_fixtures(pattern="*.json"):
    out = [_load(path) for path in sorted(glob.glob(os.path.join(FIXTURES, pattern)))]
    check(out, "no fixtures found in %s" % FIXTURES)
    return out


def load_fixture(name):
    """One fixture by file name (e.g. "browser-exception-2.json")."""
    path = os.path.join(FIXTURES, name)
    check(os.path.isfile(path), "SDK fixture %s not found (looked in %s)" % (name, FIXTURES))
    return _load(path)


def fx_header(fx, name):
    for k, v in fx["headers"]:
        if k.lower() == name.lower():
            return v
    return None


def fixture_request(fx, overrides=None):
    """(method, target, headers, body, chunked) to replay a fixture. overrides: {"path", "query",
    "body", "headers": {name: value or None}} (header names matched case-insensitively; None
    removes, new names are appended). Host and the framing headers are always dropped."""
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
    return fx["method"], target, headers, body, bool(fx.get("chunked"))


def replay(fx, port, overrides=None, chunked=None, timeout=15.0):
    """Replay a fixture on a fresh connection (see fixture_request for overrides)."""
    method, target, headers, body, fx_chunked = fixture_request(fx, overrides)
    return request(port, method, target, headers, body, chunked=fx_chunked if chunked is None else chunked,
                   timeout=timeout)


def replay_on(conn, fx, chunked=None):
    """Replay a fixture on a KeepAlive connection."""
    method, target, headers, body, fx_chunked = fixture_request(fx)
    return conn.send(method, target, headers, body, fx_chunked if chunked is None else chunked)


# ------------------------------------------------------------ bodies

CODECS = ("gzip", "deflate", "br", "zstd")
_TOOLS = {"br": "brotli", "zstd": "zstd"}


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


def _run_filter(args, data, timeout=120):
    p = spawn(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate(timeout=10)
        raise TestFailure("%s took over %ss" % (args[0], timeout))
    check(p.returncode == 0, "%s failed (%s): %r" % (" ".join(args), p.returncode, err[:300]))
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
        return decode_body(data, codec)
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
    p = spawn(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    # the compressed output of zeros is tiny, so the pipe never fills while we write
    chunk = bytes(1 << 20)
    for _ in range(size >> 20):
        p.stdin.write(chunk)
    p.stdin.close()
    out = p.stdout.read()
    check(p.wait(timeout=60) == 0, "%s bomb compression failed" % tool)
    return out


# ------------------------------------------------------------ envelopes and JSON

def split_envelope(body):
    """(header_line, rest): rest starts after the first '\\n' (b"" if none)."""
    i = body.find(b"\n")
    if i < 0:
        return body, b""
    return body[:i], body[i + 1:]


def parse_envelope(body):
    """(header dict, [(item header dict, payload bytes)]) of a decoded envelope."""
    hdr, rest = split_envelope(body)
    items = []
    while rest:
        ih, rest = split_envelope(rest)
        if not ih.strip():
            continue
        item = json.loads(ih)
        n = item.get("length")
        if n is None:
            payload, rest = split_envelope(rest)
        else:
            check(len(rest) >= n, "item %r runs past the end of the envelope" % item)
            payload, rest = rest[:n], rest[n:]
            check(rest[:1] in (b"", b"\n"), "no newline after a %d-byte item" % n)
            rest = rest[1:]
        items.append((item, payload))
    return json.loads(hdr), items


def ordered_json(data):
    """Parse JSON keeping object key order (objects become lists of pairs)."""
    return json.loads(data, object_pairs_hook=lambda pairs: [(k, v) for k, v in pairs])


def check_envelope_rewrite(sent, got, want_dsn, sdk_key, real_key, what, labels=None):
    """A forwarded envelope (both bodies decoded) against what the SDK sent: a header "dsn" became
    want_dsn and a trace.public_key that was the SDK's key became real_key; every other header
    field, the field order, and every byte after the header line are unchanged. Failure messages
    show keys masked, or by the names in labels ({key: name})."""
    labels = dict({real_key: "<real key>"}, **(labels or {}))
    s_hdr, s_rest = split_envelope(sent)
    g_hdr, g_rest = split_envelope(got)
    check(g_rest == s_rest, "%s: envelope items changed (%d bytes sent after the header, %d forwarded)" % (
        what, len(s_rest), len(g_rest)))
    s, g = json.loads(s_hdr), json.loads(g_hdr)
    check(list(g) == list(s), "%s: header fields %r, sent %r" % (what, list(g), list(s)))
    for k, v in s.items():
        if k == "dsn":
            check(g[k] == want_dsn, "%s: header dsn %s, want %s" % (
                what, masked(g[k], labels), masked(want_dsn, labels)))
        elif k == "trace" and isinstance(v, dict):
            want = dict(v)
            if want.get("public_key") == sdk_key:
                want["public_key"] = real_key
            check(g[k] == want and list(g[k]) == list(v), "%s: header trace %s, want %s" % (
                what, masked(g[k], labels), masked(want, labels)))
        else:
            check(g[k] == v, "%s: header field %s changed: %s, sent %s" % (
                what, k, masked(g[k], labels), masked(v, labels)))


# Real SDK items to build envelopes from: the item, the fixture it comes from, and that fixture's
# event id (replaced by the new event's, same length, so an item's "length" stays true).
SDK_ITEMS = {
    "transaction": ("python-transaction-1.json", "1c4d64bc873f4146ac57dd57b9d70a79"),
    "event": ("node-exception-2.json", "bf1d1a926b6b4d8cab9bbcc3943093b2"),
}


def sdk_envelope(kinds, eid):
    """An envelope body with one real SDK item per kind ("transaction", "event") under a header
    naming eid, each item taken from a captured SDK request with its event id replaced by eid.
    The header carries no dsn and no trace.public_key, so sentryq forwards it byte for byte."""
    check(HEX32.match(eid), "event id %r is not 32 hex digits" % eid)
    sent_at, parts = None, []
    for kind in kinds:
        name, old = SDK_ITEMS[kind]
        fx = load_fixture(name)
        body = decode_body(fx["body"], fx_header(fx, "Content-Encoding"))
        hdr, items = parse_envelope(body)
        sent_at = sent_at or hdr.get("sent_at")
        match = [(ih, pl) for ih, pl in items if ih.get("type") == kind]
        check(match, "fixture %s has no %s item" % (name, kind))
        ih, pl = match[0]
        pl = pl.replace(old.encode(), eid.encode())
        parts.append(json.dumps(ih, separators=(",", ":")).encode() + b"\n" + pl)
    head = {"event_id": eid, "sent_at": sent_at, "sdk": {"name": "sentry.python", "version": "1.9.10"}}
    return json.dumps(head, separators=(",", ":")).encode() + b"\n" + b"\n".join(parts) + b"\n"
