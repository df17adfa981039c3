"""sentryq.py - sentryq processes, run_cli, the one config writer, the standard test stack, and
the checks made on every sentryq a suite ran: no sanitizer report, no configured credential in a
log, every graceful stop exited 0 (process_health, called by the runner)."""

import os
import re
import shlex
import signal
import subprocess

from sqtest.http import get_json
from sqtest.mock import Mock
from sqtest.proc import SOURCE_ROOT, TestFailure, check, free_port, spawn, tmpdir, wait_for
from sqtest.resp import Redis

BIN = os.environ.get("SENTRYQ_BIN") or os.path.join(SOURCE_ROOT, "build", "sentryq")
# A command every sentryq (server and CLI) runs under, e.g. SENTRYQ_WRAPPER="valgrind --leak-check=full
# --error-exitcode=99 --log-file=DIR/vg-%p.log" (scripts/test --valgrind sets it). Empty: none.
WRAPPER = shlex.split(os.environ.get("SENTRYQ_WRAPPER", ""))
SANITIZER = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|AddressSanitizer")

_sentryqs = []     # every Sentryq made, whose logs are checked and printed
_exits = []        # (signal, exit code, log) of every graceful stop
_cli_reports = []  # sanitizer reports seen in run_cli output


# ---------------------------------------------------------------- config

def project_conf(name, key, id, secret=None):
    s = '{ name = "%s"; key = "%s"; id = %d; ' % (name, key, id)
    if secret:
        s += 'secret = "%s"; ' % secret
    return s + "}"


def upstream_conf(name, url, projects):
    return '  { name = "%s"; url = "%s";\n    projects = ( %s ); }' % (
        name, url, ",\n      ".join(projects))


# make_config keyword -> (group or None for top level, setting, type), in the order written.
SETTINGS = (
    ("max_body", "listen", "max_body_size", int),
    ("max_body_memory", "listen", "max_body_memory", int),
    ("listen_max_connections", "listen", "max_connections", int),
    ("head_timeout", "listen", "head_timeout", float),
    ("min_body_rate", "listen", "min_body_rate", float),
    ("client_timeout", "listen", "client_timeout", float),
    ("prefix", "redis", "prefix", str),
    ("redis_timeout", "redis", "timeout", float),
    ("reconnect_max", "redis", "reconnect_max", float),
    ("buffer_bytes", "redis", "buffer_bytes", int),
    ("max_pending", "queue", "max_pending", int),
    ("max_bytes", "queue", "max_bytes", int),
    ("fwd_timeout", "forward", "timeout", float),
    ("connect_timeout", "forward", "connect_timeout", float),
    ("retry_initial", "forward", "retry_initial", float),
    ("retry_max", "forward", "retry_max", float),
    ("outage_grace", "forward", "outage_grace", float),
    ("claim_idle", "forward", "claim_idle", float),
    ("max_connections", "forward", "max_connections", int),
    ("max_attempts", "forward", "max_attempts", int),
    ("batch", "forward", "batch", int),
    ("consumer", "forward", "consumer", str),
    ("passthrough", "rate_limits", "passthrough", bool),
    ("shutdown_timeout", None, "shutdown_timeout", float),
    ("log_level", None, "log_level", str),
)
GROUPS = ("listen", "redis", "queue", "forward", "rate_limits")
# What a config has unless a keyword says otherwise (None leaves a setting to sentryq's default).
DEFAULTS = dict(max_body=20971520, prefix="sentryq:", buffer_bytes=0, fwd_timeout=5.0, retry_initial=0.2,
                retry_max=1.0, claim_idle=2.0)


def _value(kind, v):
    if kind is bool:
        return "true" if v else "false"
    if kind is float:
        return repr(float(v))
    if kind is int:
        return "%d%s" % (v, "L" if not -2 ** 31 <= v < 2 ** 31 else "")
    check('"' not in str(v), "a quote in config string %r" % v)
    return '"%s"' % v


def make_config(port, redis_port, upstreams, extra="", redis_extra="", **settings):
    """sentryq config text: listen on 127.0.0.1:port, Redis at 127.0.0.1:redis_port, the upstream
    blocks of upstream_conf(), then `extra` (raw text). settings: the keywords of SETTINGS over
    DEFAULTS, None to leave one out; redis_extra: raw text inside the redis group."""
    unknown = set(settings) - {k for k, _, _, _ in SETTINGS}
    if unknown:
        raise TypeError("make_config: unknown settings %s" % sorted(unknown))
    opts = dict(DEFAULTS)
    opts.update(settings)
    groups = {g: [] for g in GROUPS}
    groups["listen"] = ['address = "127.0.0.1";', "port = %d;" % port]
    groups["redis"] = ['host = "127.0.0.1";', "port = %d;" % redis_port]
    top = []
    for kw, group, name, kind in SETTINGS:
        if opts.get(kw) is not None:
            (groups[group] if group else top).append("%s = %s;" % (name, _value(kind, opts[kw])))
    if redis_extra:
        groups["redis"].append(redis_extra.strip())
    lines = ["%s = { %s };" % (g, " ".join(groups[g])) for g in GROUPS if groups[g]]
    lines += top
    lines += ["upstreams = (", ",\n".join(upstreams), ");", extra]
    return "\n".join(lines) + "\n"


def config_secrets(text):
    """Real keys, secrets, Redis passwords and project names (the DSN secrets users were given)."""
    out = set(re.findall(r'\b(?:key|secret|password)\s*=\s*"([^"]{8,})"', text))
    out |= set(re.findall(r'\{\s*name\s*=\s*"([^"]{5,})"\s*;\s*key\s*=', text))
    return out


# ---------------------------------------------------------------- processes

class Sentryq:
    """One sentryq process at a time (restartable); dir holds its config and one stderr log per
    start (a temp dir removed at exit unless given)."""

    def __init__(self, bin=None, dir=None):
        self.bin = bin or BIN
        self.dir = dir or tmpdir("sentryq-run-")
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

    def start(self, config_text, port=None, wait=True, timeout=15, env=None, preexec_fn=None):
        """Run `sentryq -c` on config_text; port defaults to listen.port of the text.
        preexec_fn runs in the child before exec (e.g. resource.setrlimit for a lower fd limit)."""
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
            self.proc = spawn(WRAPPER + [self.bin, "-c", self.config_path], stdin=subprocess.DEVNULL,
                              stdout=errf, stderr=errf, env=env, preexec_fn=preexec_fn)
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


def status_counters(sq):
    st, doc = sq.status()
    return doc.get("counters", {})


def run_cli(args, timeout=15, env=None, input=None):
    """Run sentryq with args to completion (bounded); returns CompletedProcess (text)."""
    p = spawn(WRAPPER + [BIN] + list(args), stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
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


# ---------------------------------------------------------------- the standard stack

# Relay-side names the SDKs use, and the real credentials sentryq must substitute.
KEY_VOD, SEC_VOD, ID_VOD = "a6f431e198734105aef464f6e702351f", "563b78f7bc1941828df0e5ebd79cc17a", 20
KEY_WEB, SEC_WEB, ID_WEB = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf", "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", 1
AUTH_VOD = "Sentry sentry_key=wow, sentry_version=7, sentry_client=proto-test/1.0, sentry_secret=vod_be"


def standard_upstreams(url):
    """Upstream "wow": vod_be (rule 1: wow + secret vod_be -> id 20) and web (rule 2: wow + id 1)."""
    return [upstream_conf("wow", url, [project_conf("vod_be", KEY_VOD, ID_VOD, SEC_VOD),
                                       project_conf("web", KEY_WEB, ID_WEB, SEC_WEB)])]


def start_stack(S, extra="", max_body=20971520, upstreams=None, mock=None):
    """Redis + mock + sentryq into the dict S (keys redis, mock, port, sq)."""
    if "redis" not in S:
        S["redis"] = Redis().start()
    S["mock"] = mock or Mock().start()
    S["port"] = free_port()
    ups = upstreams or standard_upstreams(S["mock"].url)
    cfg = make_config(S["port"], S["redis"].port, ups, max_body=max_body, extra=extra)
    S["sq"] = Sentryq().start(cfg, S["port"])
    return S


# ---------------------------------------------------------------- per-suite checks

def stop_all():
    """Gracefully stop every sentryq still running (their exit codes are checked)."""
    for sq in _sentryqs:
        if sq.alive():
            sq.stop()


def _leaked(text, secrets):
    for sec in sorted(secrets):
        if re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(sec), text):
            return sec
    return None


def process_health():
    """What is wrong with the sentryq processes run so far ("" when nothing): a graceful stop that
    exited non-zero, a sanitizer report or a configured credential in a log."""
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


def print_new_logs():
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
