"""sentryq.py - sentryq processes, run_cli, the one config writer, the standard test stack, and
the checks made on every sentryq a suite ran: no sanitizer report, no configured credential in a
log, every graceful stop exited 0, and with log.format = "json" every line one JSON object with
ts, level and msg (process_health, called by the runner)."""

import json
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

def project_conf(name, key, id, secret=None, mirror=None):
    """One project block. mirror: [(upstream, project), ...], the further destinations of the
    project's requests (mirror routes), in order."""
    s = '{ name = "%s"; key = "%s"; id = %d; ' % (name, key, id)
    if secret:
        s += 'secret = "%s"; ' % secret
    if mirror:
        s += "mirror = ( %s ); " % ", ".join('{ upstream = "%s"; project = "%s"; }' % m for m in mirror)
    return s + "}"


def stream_key(prefix, upstream, project):
    """The Redis stream of one route (as src/entry.c spells it)."""
    return "%sq:%s:%s" % (prefix, upstream, project)


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
    ("reuse_port", "listen", "reuse_port", bool),
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
    ("departed_after", "forward", "departed_after", float),
    ("passthrough", "rate_limits", "passthrough", bool),
    ("fleet_sync", "fleet", "sync", bool),
    ("sync_period", "fleet", "sync_period", float),
    ("shutdown_timeout", None, "shutdown_timeout", float),
    ("role", None, "role", str),
    ("log_level", "log", "level", str),
    ("log_format", "log", "format", str),
    ("stats_period", "log", "stats_period", float),
    ("metrics_port", "metrics", "port", int),
    ("metrics_on_ingest", "metrics", "on_ingest", bool),
)
GROUPS = ("listen", "redis", "queue", "forward", "rate_limits", "fleet", "log", "metrics")
JSON_LOG = re.compile(r'\blog\s*[=:]\s*\{[^}]*\bformat\s*[=:]\s*"json"', re.I)
# What a config has unless a keyword says otherwise (None leaves a setting to sentryq's default).
DEFAULTS = dict(max_body=20971520, prefix="sentryq:", buffer_bytes=0, fwd_timeout=5.0, retry_initial=0.2,
                retry_max=1.0, claim_idle=2.0)


SHIPPED_CONF = os.path.join(SOURCE_ROOT, "etc", "sentryq.conf")
# The user-visible timings among the settings: a fault case that shortens one says why next to it,
# and another case covers the shipped value (World prints every one a case changes).
TIMINGS = ("client_timeout", "redis_timeout", "reconnect_max", "fwd_timeout", "connect_timeout", "retry_initial",
           "retry_max", "outage_grace", "claim_idle", "shutdown_timeout", "departed_after", "sync_period")


def _parse_shipped(text):
    """{(group or None, setting): value} of the scalar settings of a sentryq.conf before its
    `upstreams` list (the groups listen, redis, queue, forward, rate_limits and the top-level
    keys). Enough libconfig for the file sentryq ships: one setting per line, # comments."""
    out, group = {}, None
    for raw in text.splitlines():
        # A comment line, or a trailing comment ('#' with no quote after it).
        line = "" if raw.lstrip().startswith("#") else re.sub(r'#[^"]*$', "", raw).strip()
        if not line:
            continue
        if re.match(r"^upstreams\s*=", line):
            break
        m = re.match(r"^(\w+)\s*=\s*\{\s*$", line)
        if m:
            group = m.group(1)
            continue
        if re.match(r"^\}\s*;?$", line):
            group = None
            continue
        m = re.match(r'^(\w+)\s*=\s*("(?:[^"]*)"|[^;]+);$', line)
        check(m, "%s: cannot read the line %r" % (SHIPPED_CONF, raw))
        v = m.group(2).strip()
        if v.startswith('"'):
            val = v[1:-1]
        elif v in ("true", "false"):
            val = v == "true"
        elif re.match(r"^-?\d+L?$", v):
            val = int(v.rstrip("L"))
        else:
            val = float(v)
        out[(group, m.group(1))] = val
    return out


def shipped_settings(path=SHIPPED_CONF):
    """make_config keywords with the values etc/sentryq.conf ships (the product's defaults), for
    every keyword of SETTINGS the file sets; the others (consumer) are None: sentryq's default."""
    with open(path) as f:
        found = _parse_shipped(f.read())
    out = {}
    for kw, group, name, kind in SETTINGS:
        v = found.get((group, name))
        out[kw] = None if v is None else (float(v) if kind is float else v)
    check(out["retry_max"] is not None and out["claim_idle"] is not None,
          "%s: no forward.retry_max / forward.claim_idle: not the shipped config?" % path)
    return out


def _value(kind, v):
    if kind is bool:
        return "true" if v else "false"
    if kind is float:
        return repr(float(v))
    if kind is int:
        return "%d%s" % (v, "L" if not -2 ** 31 <= v < 2 ** 31 else "")
    check('"' not in str(v), "a quote in config string %r" % v)
    return '"%s"' % v


def make_config(port, redis_port, upstreams, extra="", redis_extra="", forward_extra="", **settings):
    """sentryq config text: listen on 127.0.0.1:port, Redis at 127.0.0.1:redis_port, the upstream
    blocks of upstream_conf(), then `extra` (raw text). settings: the keywords of SETTINGS over
    DEFAULTS, None to leave one out; redis_extra, forward_extra: raw text inside the redis or
    forward group (e.g. 'headers = ( "X-Request-Id" );')."""
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
    if forward_extra:
        groups["forward"].append(forward_extra.strip())
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
        self.json_logs = set()  # the logs of starts with log.format = "json"
        self.secrets = set()  # credentials of every config started: must never reach the log
        _sentryqs.append(self)

    def write_config(self, text, name="sentryq.conf", mode=0o600):
        """The config file, 0600 unless told (it holds every project's secret)."""
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def start(self, config_text, port=None, wait=True, timeout=15, env=None, config_mode=0o600, preexec_fn=None):
        """Run `sentryq -c` on config_text; port defaults to listen.port of the text. env: the
        whole environment of the process (None: this one's). preexec_fn runs in the child before
        exec (e.g. resource.setrlimit for a lower fd limit)."""
        if port is None:
            m = re.search(r"listen\s*[=:]\s*\{[^}]*?\bport\s*[=:]\s*(\d+)", config_text)
            check(m, "no listen.port in the config text")
            port = int(m.group(1))
        self.port = port
        self.config_path = self.write_config(config_text, mode=config_mode)
        self.secrets |= config_secrets(config_text)
        log = os.path.join(self.dir, "stderr-%d.log" % (len(self.logs) + 1))
        self.logs.append(log)
        if JSON_LOG.search(config_text) or (env or {}).get("SENTRYQ_LOG_FORMAT", "").lower() == "json":
            self.json_logs.add(log)
        with open(log, "wb") as errf:
            self.proc = spawn(WRAPPER + [self.bin, "-c", self.config_path], stdin=subprocess.DEVNULL,
                              stdout=errf, stderr=errf, env=env, preexec_fn=preexec_fn)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=15):
        """/status 200 with Redis connected (200 alone may be a Redis outage the buffer absorbs)."""
        def ready():
            check(self.proc.poll() is None, "sentryq exited with %s during start-up" % self.proc.returncode)
            st, doc = self.status()
            return st == 200 and doc.get("redis", {}).get("connected") is True
        wait_for(ready, timeout, "sentryq /status 200 on port %d" % self.port)

    def status(self):
        return get_json(self.port, "/status")

    def json_log(self, index=-1):
        """The lines of a start's stderr (default the last) parsed as JSON (log.format = "json")."""
        with open(self.logs[index], "rb") as f:
            return [json.loads(line) for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]

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

    def reload(self, config_text=None, timeout=15):
        """Write config_text (if given) over the config file and send SIGHUP; wait (bounded) for the
        reload's log line. Returns "applied" or "refused"."""
        def count():
            with open(self.logs[-1], "rb") as f:
                text = f.read().decode("utf-8", "replace")
            return text.count("reload: refused") + len(RELOAD_APPLIED.findall(text)), text
        before = count()[0]
        if config_text is not None:
            self.write_config(config_text)
            self.secrets |= config_secrets(config_text)
        self.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: count()[0] > before, timeout, "the reload's log line")
        last = [ln for ln in count()[1].splitlines() if "reload: refused" in ln or RELOAD_APPLIED.search(ln)][-1]
        return "refused" if "reload: refused" in last else "applied"

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


RELOAD_APPLIED = re.compile(r"reload: \S+ applied")


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


def json_log_problem(text):
    """The first line of a log.format = "json" log that is not one JSON object with ts, level and
    msg, as "line N: why" ("" when every line is)."""
    for n, line in enumerate(text.splitlines(), 1):
        if SANITIZER.search(line):
            continue  # reported on its own
        try:
            doc = json.loads(line)
        except ValueError as e:
            return "line %d is not JSON (%s): %r" % (n, e, line[:200])
        if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("ts", "level", "msg")):
            return "line %d lacks ts, level or msg: %r" % (n, line[:200])
    return ""


def process_health():
    """What is wrong with the sentryq processes run so far ("" when nothing): a graceful stop that
    exited non-zero, a sanitizer report or a configured credential in a log, a JSON log line that
    is not JSON."""
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
            bad = json_log_problem(text) if path in sq.json_logs else ""
            if bad:
                out.append("log.format = \"json\" but in %s %s" % (path, bad))
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
