"""resp.py - a minimal RESP2 client and a redis-server controller on 127.0.0.1."""

import os
import socket
import subprocess

from sqtest.proc import check, free_port, port_open, spawn, tmpdir, wait_for


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
    """A redis-server of its own on 127.0.0.1. persist: append-only file with fsync on every
    write (what was acknowledged survives a restart), else no persistence at all (benchmarks)."""

    def __init__(self, port=None, dir=None, persist=True, password=None, args=()):
        self.port = port or free_port()
        self.dir = dir or tmpdir("sentryq-redis-")
        self.persist = persist
        self.password = password
        self.args = list(args)  # more redis-server options, e.g. ["--replicaof", "127.0.0.1", "6379"]
        self.proc = None
        self.log = os.path.join(self.dir, "redis.log")

    def start(self, timeout=10):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", self.dir, "--logfile", self.log]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.args
        self.proc = spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ping, timeout, "redis PING on port %d" % self.port)
        return self

    def _ping(self):
        check(self.proc.poll() is None, "redis-server exited with %s" % self.proc.returncode)
        c = RespClient(self.port, timeout=1.0)
        try:
            if self.password:
                c.command("AUTH", self.password)
            return c.command("PING") == b"PONG"
        except RedisError:  # LOADING while the AOF is read back
            return False
        finally:
            c.close()

    def client(self):
        """A connection of its own (authenticated when the server has a password)."""
        c = RespClient(self.port)
        if self.password:
            try:
                c.command("AUTH", self.password)
            except BaseException:
                c.close()
                raise
        return c

    def command(self, *args):
        c = self.client()
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
