"""redis_ha.py - a Redis Sentinel topology on 127.0.0.1: one master, replicas, sentinels (Debian's
redis-sentinel), with fast failure detection, and what a test asks of it: who is the master, have
the sentinels promoted another, kill one of them."""

import os
import subprocess
import time

from sqtest.proc import check, free_port, need_tool, spawn, tmpdir, wait_for
from sqtest.resp import Redis, RedisError, RespClient
from sqtest.topology_world import TopologyWorld

MASTER_NAME = "sqha"


class Sentinel:
    """One redis-sentinel with its own (rewritable) config file."""

    def __init__(self, master_port, quorum, down_after_ms, failover_timeout_ms, dir=None, password=None,
                 master_password=None):
        self.port = free_port()
        self.password = password
        self.dir = dir or tmpdir("sentryq-sentinel-")
        self.conf = os.path.join(self.dir, "sentinel.conf")
        self.log = os.path.join(self.dir, "sentinel.log")
        with open(self.conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n" % (self.port, self.dir, self.log))
            f.write("sentinel monitor %s 127.0.0.1 %d %d\n" % (MASTER_NAME, master_port, quorum))
            f.write("sentinel down-after-milliseconds %s %d\n" % (MASTER_NAME, down_after_ms))
            f.write("sentinel failover-timeout %s %d\n" % (MASTER_NAME, failover_timeout_ms))
            f.write("sentinel parallel-syncs %s 2\n" % MASTER_NAME)
            if master_password:
                f.write("sentinel auth-pass %s %s\n" % (MASTER_NAME, master_password))
            if password:
                f.write("requirepass %s\n" % password)
        self.proc = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=10):
        self.proc = spawn([need_tool("redis-sentinel"), self.conf], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        wait_for(self._ping, timeout, "sentinel PING on port %d" % self.port)
        return self

    def _ping(self):
        check(self.proc.poll() is None, "redis-sentinel exited with %s (see %s)" % (self.proc.returncode, self.log))
        return self.command("PING") == b"PONG"

    def command(self, *args):
        c = RespClient(self.port, timeout=2.0)
        try:
            if self.password:
                c.command("AUTH", self.password)
            return c.command(*args)
        finally:
            c.close()

    def master_info(self):
        """SENTINEL master <name> as a dict of str."""
        rep = self.command("SENTINEL", "master", MASTER_NAME)
        return {rep[i].decode(): rep[i + 1].decode() for i in range(0, len(rep) - 1, 2)}

    def master_port(self):
        rep = self.command("SENTINEL", "get-master-addr-by-name", MASTER_NAME)
        return int(rep[1]) if rep else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)


class RedisHA:
    """replicas + 1 redis-servers (the first starts as master) watched by `sentinels` sentinels,
    optionally with a password on the servers and another on the sentinels. persist=False: the servers keep nothing on disk (a killed master stays dead in these tests;
    the replicas hold the data)."""

    def __init__(self, replicas=2, sentinels=3, quorum=2, down_after_ms=1000, failover_timeout_ms=3000,
                 password=None, sentinel_password=None):
        auth = ["--masterauth", password] if password else []
        self.master = Redis(persist=False, password=password, args=auth)
        self.replicas = [Redis(persist=False, password=password,
                               args=auth + ["--replicaof", "127.0.0.1", str(self.master.port)])
                         for _ in range(replicas)]
        self.sentinels = [Sentinel(self.master.port, quorum, down_after_ms, failover_timeout_ms,
                                   password=sentinel_password, master_password=password)
                          for _ in range(sentinels)]

    @property
    def servers(self):
        return [self.master] + self.replicas

    def start(self, timeout=30):
        """Everything up, and the sentinels agreeing on the topology (each sees every replica and
        every other sentinel), so that a failover can be elected."""
        self.master.start()
        for r in self.replicas:
            r.start()
        for s in self.sentinels:
            s.start()
        wait_for(lambda: all(self._link_up(r) for r in self.replicas), timeout, "replicas in sync")
        want_s, want_r = len(self.sentinels) - 1, len(self.replicas)

        def agreed():
            for s in self.sentinels:
                i = s.master_info()
                if int(i["num-other-sentinels"]) < want_s or int(i["num-slaves"]) < want_r:
                    return False
            return True
        wait_for(agreed, timeout, "sentinels to see %d replicas and %d other sentinels each" % (want_r, want_s),
                 interval=0.1)
        return self

    @staticmethod
    def _link_up(r):
        info = r.command("INFO", "replication").decode()
        return "master_link_status:up" in info

    def sentinel_addrs(self):
        return [s.addr for s in self.sentinels]

    def by_port(self, port):
        return next(r for r in self.servers if r.port == port)

    def role(self, r):
        try:
            return r.command("ROLE")[0].decode()
        except (OSError, RedisError, ConnectionError):
            return None

    def current_master(self):
        """The server the live sentinels name (their first answer)."""
        for s in self.sentinels:
            if s.alive():
                return self.by_port(s.master_port())
        raise AssertionError("no sentinel alive")

    def kill_master(self):
        """SIGKILL the current master; returns (the killed Redis, time.monotonic() of the kill)."""
        m = self.current_master()
        m.kill()
        return m, time.monotonic()

    def wait_promoted(self, old, timeout=30):
        """Until every live sentinel names a master other than `old` and that server says ROLE
        master; returns it."""
        def promoted():
            ports = {s.master_port() for s in self.sentinels if s.alive()}
            if len(ports) != 1 or old.port in ports:
                return None
            new = self.by_port(ports.pop())
            return new if self.role(new) == "master" else None
        return wait_for(promoted, timeout, "the sentinels to promote a replica", interval=0.05)

    def wait_replicas(self, master, n, timeout=30):
        """Until `master` has n replicas online (INFO connected_slaves)."""
        def enough():
            info = master.command("INFO", "replication").decode()
            return any(line.startswith("connected_slaves:") and int(line.split(":")[1]) >= n
                       for line in info.splitlines())
        wait_for(enough, timeout, "%d replicas connected to port %d" % (n, master.port), interval=0.1)

    def close(self):
        for s in self.sentinels:
            s.kill()
        for r in self.servers:
            r.kill()


class HAWorld(TopologyWorld):
    """One ha case: a RedisHA topology, the mock upstream, one sentryq that reaches Redis through
    the sentinels only (redis.host/port point nowhere), and the project its SDK traffic names."""

    def __init__(self, wait_replicas, password=None, sentinel_password=None, **topology):
        from sqtest.world import Project
        self.ha = RedisHA(password=password, sentinel_password=sentinel_password, **topology).start()
        super().__init__(self.ha)
        self.prj = Project("up", "app", 91)
        self.wait_replicas = wait_replicas
        self.password, self.sentinel_password = password, sentinel_password

    def config(self, **over):
        from sqtest.sentryq import make_config, upstream_conf
        from sqtest.world import FAULT_SETTINGS
        extra = ['sentinels = ( %s );' % ", ".join('"%s"' % a for a in self.ha.sentinel_addrs()),
                 'master_name = "%s";' % MASTER_NAME, "wait_replicas = %d;" % self.wait_replicas,
                 "wait_timeout = 0.5;"]
        if self.password:
            extra.append('password = "%s";' % self.password)
        if self.sentinel_password:
            extra.append('sentinel_password = "%s";' % self.sentinel_password)
        # port 1: nothing listens there; with sentinels it must not be used at all
        settings = dict(FAULT_SETTINGS, redis_timeout=2.0, buffer_bytes=67108864)
        settings.update(over)
        return make_config(self.port, 1, [upstream_conf("up", self.mock.url, [self.prj.conf()])],
                           redis_extra=" ".join(extra), **settings)

    def wait_following(self, server, timeout=30):
        """Until sentryq is connected to `server` (its /status redis.address); returns time.monotonic()."""
        want = "127.0.0.1:%d" % server.port

        def there():
            r = self.redis_status()
            return r.get("connected") and r.get("address") == want
        wait_for(there, timeout, "sentryq connected to the master at %s (now %r)" % (want, "?"), interval=0.05)
        return time.monotonic()
