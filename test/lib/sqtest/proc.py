"""proc.py - failures, bounded polling, child processes and temp dirs, free ports, /proc figures.

Every process started with spawn() is killed at exit and every tmpdir() removed, even when a
test fails; a SIGTERM to the test process exits through the same cleanup.
"""

import atexit
import http.client
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

SOURCE_ROOT = os.environ.get("SENTRYQ_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")

_procs = []      # every Popen started, killed at exit
_tmpdirs = []    # every temp dir made, removed at exit


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


_HEX32 = re.compile(r"(?<![0-9a-fA-F])([0-9a-fA-F]{4})[0-9a-fA-F]{28}(?![0-9a-fA-F])")


def masked(value, labels=None):
    """repr(value) with every 32-hex-digit run (a project key or secret) cut to its first four
    digits and "****", as sentryq's log does: for failure messages that may show credentials.
    labels: {credential: "<name>"}, shown by name instead (which key went where)."""
    text = value if isinstance(value, str) else repr(value)
    for cred, name in (labels or {}).items():
        text = text.replace(cred, name)
    return _HEX32.sub(r"\1****", text)


def wait_for(cond, timeout, what, interval=0.02, max_interval=0.25):
    """Poll cond() until it returns a truthy value (returned) or timeout seconds pass (fails).
    The interval grows by half each round, up to max_interval (max_interval=interval: fixed).
    OSError, HTTPException and ValueError raised by cond() count as "not yet"."""
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
        interval = min(interval * 1.5, max_interval)


def cleanup():
    """Kill every process spawn() started and remove every tmpdir() (also run at exit)."""
    for p in _procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def tmpdir(prefix="sentryq-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    _procs.append(p)
    return p


def terminate(p, timeout=10, sig=signal.SIGTERM):
    """Send sig (default SIGTERM) and wait at most timeout seconds, then SIGKILL.
    Returns the exit code, or None when the process had to be killed."""
    if p.poll() is not None:
        return p.returncode
    p.send_signal(sig)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)
        return None


def start_ready(args, what, port=None, timeout=10, stderr=subprocess.DEVNULL):
    """Spawn a server that prints "READY <port>" on stdout once it listens; returns (proc, port).
    port: the port the server was told to take (then READY must name it), None for any."""
    p = spawn(args, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + timeout
    line = ""
    while not line.endswith("\n"):   # readline blocks, so bound it with select
        left = deadline - time.monotonic()
        check(left > 0 and p.poll() is None, "%s did not print READY" % what)
        if select.select([p.stdout], [], [], left)[0]:
            chunk = p.stdout.readline()
            check(chunk, "%s exited before READY%s" % (what, " (port %d taken?)" % port if port else ""))
            line += chunk
    m = re.match(r"READY (\d+)$", line.strip())
    check(m and (port is None or int(m.group(1)) == port), "unexpected %s output %r" % (what, line))
    return p, int(m.group(1))


def run_bounded(args, timeout, env=None, cwd=None, input=None):
    """Run to completion with a deadline; returns (returncode, stdout, stderr) as text."""
    p = spawn(args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        raise TestFailure("%s did not finish within %ss\nstdout: %s\nstderr: %s" % (
            " ".join(args[:3]), timeout, out.decode(errors="replace")[-2000:],
            err.decode(errors="replace")[-2000:]))
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_peer_ports(pid):
    """The remote ports of process pid's connected IPv4/IPv6 TCP sockets (from /proc: its fds'
    socket inodes matched against /proc/net/tcp and tcp6; listening sockets have port 0)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[9] in inodes:
                out.add(int(cols[2].rsplit(":", 1)[1], 16))
    out.discard(0)
    return out


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def proc_stat(pid):
    """(cpu seconds, VmRSS KiB, VmHWM KiB) of a live process (0 for a figure a zombie lacks)."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    cpu = (int(rest[11]) + int(rest[12])) / CLK_TCK
    rss = hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, rss, hwm


def vm_hwm_kib(pid):
    """Peak resident set size (VmHWM) of a process, in KiB."""
    hwm = proc_stat(pid)[2]
    check(hwm > 0, "no VmHWM for pid %d" % pid)
    return hwm


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


def need_tool(name):
    """The path of a command-line tool the test needs, or a failure saying how to get it."""
    path = shutil.which(name)
    check(path, "the `%s` command is missing: scripts/install-deps --test installs it "
          "(Debian package %s)" % (name, name))
    return path
