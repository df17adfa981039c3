#!/usr/bin/python3
"""test_tls.py - https:// upstreams: certificate verification against a CA made here with openssl.

One sentryq, one upstream per case (the DSN key names the upstream, project "p" in each):
  ip        https://127.0.0.1:<good>/pfx, ca_file       -> delivered to /pfx/api/11/...
  host      https://localhost:<good>, ca_file          -> delivered (hostname checked)
  sni       https://localhost:<sni>, ca_file           -> the TLS ClientHello names "localhost"
  sys       https://127.0.0.1:<sys>, system CA store   -> never delivered, stays pending
  wrongname https://localhost:<wrong>, ca_file, cert for other.example only -> never delivered
  insecure  https://localhost:<good>/insecure, verify = false -> delivered, loud warning on stderr
  restart   https://127.0.0.1:<fixed>, ca_file         -> delivered across restarts of the TLS mock
"""

import http.server
import json
import os
import re
import ssl
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id  # noqa: E402
from sqtest.http import parse_sentry_auth, request  # noqa: E402
from sqtest.mock import Mock, rec_body, rec_header, wait_record  # noqa: E402
from sqtest.proc import check, free_port, tmpdir, wait_for  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq, make_config, project_conf  # noqa: E402
from sqtest.tls import make_ca, make_server_cert  # noqa: E402

S = {}
IDS = {"ip": 11, "host": 12, "sys": 13, "insecure": 14, "wrongname": 15, "sni": 16, "restart": 17}


def key_of(name):
    return "%032x" % (0xc0ffee00 + IDS[name])


def tls_upstream(name, url, ca_file=None, verify=True):
    opts = ""
    if ca_file:
        opts += ' ca_file = "%s";' % ca_file
    if not verify:
        opts += " verify = false;"
    return '  { name = "%s"; url = "%s";%s\n    projects = ( %s ); }' % (
        name, url, opts, project_conf("p", key_of(name), IDS[name], "s%031x" % IDS[name]))


class SniServer(http.server.ThreadingHTTPServer):
    """A tiny https server that records the SNI name of every handshake and answers 200."""
    daemon_threads = True

    def __init__(self, cert, key):
        super().__init__(("127.0.0.1", 0), SniHandler)
        self.names, self.paths, self.lock = [], [], threading.Lock()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.sni_callback = self._sni

    def _sni(self, sslobj, name, ctx):
        with self.lock:
            self.names.append(name)

    def finish_request(self, request, client_address):
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.RequestHandlerClass(tls, client_address, self)


class SniHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with self.server.lock:
            self.server.paths.append((self.path, body))
        out = b'{"id":"%s"}' % (b"0" * 32)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def setup_module():
    d = tmpdir("sentryq-tls-")
    ca, _ = make_ca(d)
    good = make_server_cert(d, "good", "IP:127.0.0.1,DNS:localhost")
    wrong = make_server_cert(d, "wrong", "DNS:other.example", cn="other.example")
    S["ca"] = ca
    S["good"] = Mock(tls_cert=good[0], tls_key=good[1], ca_file=ca).start()
    S["sys"] = Mock(tls_cert=good[0], tls_key=good[1], ca_file=ca).start()
    S["restart"] = Mock(free_port(), good[0], good[1], ca).start()  # restarted on that port
    S["wrong"] = Mock(tls_cert=wrong[0], tls_key=wrong[1], ca_file=ca).start()
    S["good_pair"] = good
    sni = S["sni"] = SniServer(*good)
    S["sni_thread"] = threading.Thread(target=sni.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    S["sni_thread"].start()
    g, sn = S["good"].port, sni.server_address[1]
    ups = [
        tls_upstream("ip", "https://127.0.0.1:%d/pfx" % g, ca),
        tls_upstream("host", "https://localhost:%d" % g, ca),
        tls_upstream("sni", "https://localhost:%d" % sn, ca),
        tls_upstream("sys", "https://127.0.0.1:%d" % S["sys"].port),
        tls_upstream("wrongname", "https://localhost:%d" % S["wrong"].port, ca),
        tls_upstream("insecure", "https://localhost:%d/insecure" % g, verify=False),
        tls_upstream("restart", "https://127.0.0.1:%d" % S["restart"].port, ca),
    ]
    S["redis"] = Redis().start()
    S["port"] = free_port()
    cfg = make_config(S["port"], S["redis"].port, ups, extra="shutdown_timeout = 2.0;")
    S["sq"] = Sentryq().start(cfg, S["port"])


def teardown_module():
    if "sq" in S:
        S["sq"].stop()
    if "sni" in S:
        S["sni"].shutdown()
        S["sni"].server_close()


def send(upstream):
    eid = new_event_id()
    body = json.dumps({"event_id": eid, "message": "tls via %s" % upstream}).encode()
    auth = "Sentry sentry_key=%s, sentry_version=7, sentry_client=tls-test/1.0, sentry_secret=p" % upstream
    r = request(S["port"], "POST", "/api/1/store/", [("Content-Type", "application/json"),
                                                      ("X-Sentry-Auth", auth)], body)
    check(r.status == 200 and r.json() == {"id": eid}, "%s: sentryq answered %r" % (upstream, r))
    return eid, body


def delivered(mock, eid, timeout=15):
    return wait_record(mock, lambda rec: eid.encode() in rec_body(rec),
                       "event %s at %s upstream" % (eid, mock.url), timeout)


def expect_delivered(mock, upstream, prefix=""):
    eid, body = send(upstream)
    rec = delivered(mock, eid)
    want = "%s/api/%d/store/" % (prefix, IDS[upstream])
    check(rec["path"] == want, "%s: path %r, want %r" % (upstream, rec["path"], want))
    check(rec_body(rec) == body, "%s: body changed" % upstream)
    xsa = dict(parse_sentry_auth(rec_header(rec, "X-Sentry-Auth")[0]))
    check(xsa.get("sentry_key") == key_of(upstream), "%s: key not rewritten: %r" % (upstream, xsa))
    return rec


def upstream_status(name):
    st, doc = S["sq"].status()
    check(st == 200, "/status %s" % st)
    return doc["forward"]["upstreams"][name]


def stream_len(upstream):
    return S["redis"].command("XLEN", "sentryq:q:%s:p" % upstream)


# ------------------------------------------------------------ tests

def test_ip_url_with_ca_file_and_path_prefix():
    rec = expect_delivered(S["good"], "ip", "/pfx")
    check(rec_header(rec, "Host") in (["127.0.0.1:%d" % S["good"].port], ["127.0.0.1"]),
          "Host %r" % rec_header(rec, "Host"))
    wait_for(lambda: stream_len("ip") == 0, 10, "the ip stream to empty")


def test_hostname_url_with_ca_file():
    rec = expect_delivered(S["good"], "host")
    check(rec_header(rec, "Host") == ["localhost:%d" % S["good"].port], "Host %r" % rec_header(rec, "Host"))


def test_sni_names_the_host():
    eid, body = send("sni")
    sni = S["sni"]

    def got():
        with sni.lock:
            return any(eid.encode() in b for _, b in sni.paths)
    wait_for(got, 15, "event at the SNI-recording server")
    with sni.lock:
        names, paths = list(sni.names), [p for p, _ in sni.paths]
    check(names and all(n == "localhost" for n in names), "SNI names sent: %r" % names)
    check(paths[-1] == "/api/%d/store/" % IDS["sni"], "path %r" % paths[-1])


def test_system_store_refuses_private_ca_and_keeps_event():
    send("sys")
    wait_for(lambda: upstream_status("sys")["failures"] >= 2, 20, "failures on upstream sys")
    check(S["sys"].count() == 0, "the sys mock recorded %d requests: the private CA was trusted "
          "without ca_file" % S["sys"].count())
    check(stream_len("sys") == 1, "sys stream holds %r entries, want the event still pending" % stream_len("sys"))
    st, doc = S["sq"].status()
    check(doc["queue"]["pending"] >= 1, "queue.pending %r" % doc["queue"]["pending"])


def test_wrong_hostname_refused():
    send("wrongname")
    wait_for(lambda: upstream_status("wrongname")["failures"] >= 2, 20, "failures on upstream wrongname")
    check(S["wrong"].count() == 0, "a certificate for other.example was accepted for localhost")
    check(stream_len("wrongname") == 1, "wrongname stream %r, want 1 pending" % stream_len("wrongname"))


def test_verify_false_delivers_and_warns():
    expect_delivered(S["good"], "insecure", "/insecure")
    log = S["sq"].log_text()
    lines = [ln for ln in log.splitlines() if re.search(r"\binsecure\b", ln) and re.search(r"verif", ln, re.I)]
    check(lines, "no warning naming upstream 'insecure' and its disabled verification in stderr:\n%s" % log[-3000:])
    check(all(re.search(r"\b(warn|error)\b", ln, re.I) for ln in lines),
          "the verify=false notice is not at warn level: %r" % lines)
    others = [ln for ln in log.splitlines() if re.search(r"verification is off", ln, re.I)
              and not re.search(r"\binsecure\b", ln)]
    check(not others, "verify=false warning printed for verifying upstreams: %r" % others)


def test_tls_mock_restart_reconnects():
    m = S["restart"]
    expect_delivered(m, "restart")
    m.stop()
    m.start()  # same port, same certificate, no records
    expect_delivered(m, "restart")
    m.stop()
    eid, _ = send("restart")   # queued while the upstream is gone
    wait_for(lambda: upstream_status("restart")["failures"] >= 1, 15, "a failure while the mock is down")
    m.start()
    delivered(m, eid, timeout=20)
    expect_delivered(m, "restart")
    wait_for(lambda: stream_len("restart") == 0, 10, "the restart stream to empty")


def test_healthy_upstreams_unaffected_by_failing_ones():
    expect_delivered(S["good"], "ip", "/pfx")
    expect_delivered(S["good"], "host")
    check(stream_len("sys") == 1 and stream_len("wrongname") == 1, "failing streams changed")


if __name__ == "__main__":
    main(globals())
