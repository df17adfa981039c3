"""redis_cluster.py - a Redis Cluster on 127.0.0.1: 3 masters and 3 replicas as cluster-mode
redis-servers, created with `redis-cli --cluster create ... --cluster-replicas 1`, and what a test
asks of it: the slot map, which master serves a key, kill a master and wait for its replica to take
over, reshard slots with `redis-cli --cluster reshard`. Plus ClusterWorld: the mock upstream and one
sentryq with redis.cluster naming the seeds."""

import random
import socket
import subprocess
import time

from sqtest.proc import check, need_tool, spawn, wait_for
from sqtest.resp import Redis, RedisError
from sqtest.topology_world import TopologyWorld

# Redis's own failure detection: a master unreachable for this long is failed over by its replica.
# The Redis default is 15000 ms; 1000 keeps each case short. It is Redis's setting, not sentryq's.
NODE_TIMEOUT_MS = 1000


def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cluster_port(tries=200):
    """A free port P with P + 10000 free too (a cluster node's bus port), so P <= 55535."""
    for _ in range(tries):
        p = random.randint(20000, 55000)
        if _bindable(p) and _bindable(p + 10000):
            return p
    raise AssertionError("no free port pair for a cluster node")


def crc16(data):
    """CRC16/XMODEM, as Redis Cluster hashes keys."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(key):
    """The hash slot of a key (str or bytes), hash tags included."""
    k = key.encode() if isinstance(key, str) else key
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    return crc16(k) % 16384


def route_slot(upstream, project):
    """The slot of every key of a route in sentryq's cluster layout ("<prefix>{up:pr}q", ...)."""
    return key_slot("{%s:%s}" % (upstream, project))


class RedisCluster:
    """masters + masters * replicas_each redis-servers in cluster mode (no persistence: a killed
    master stays dead; its replica holds the data)."""

    def __init__(self, masters=3, replicas_each=1, password=None, extra_args=()):
        args = ["--cluster-enabled", "yes", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0"]  # any replica may take over, however stale
        args += list(extra_args)
        if password:
            args += ["--masterauth", password]
        self.password = password
        self.servers = []
        for _ in range(masters * (1 + replicas_each)):
            r = Redis(port=cluster_port(), persist=False, password=password, args=list(args))
            r.args += ["--cluster-config-file", "%s/nodes.conf" % r.dir]
            self.servers.append(r)
        self.replicas_each = replicas_each
        self.nmasters = masters
        self.args = args

    def start(self, timeout=60):
        for r in self.servers:
            r.start()
        cmd = [need_tool("redis-cli"), "--cluster", "create"] + ["127.0.0.1:%d" % r.port for r in self.servers]
        cmd += ["--cluster-replicas", str(self.replicas_each), "--cluster-yes"]
        if self.password:
            cmd += ["-a", self.password, "--no-auth-warning"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        check(p.returncode == 0, "redis-cli --cluster create failed: %s" % p.stdout.decode(errors="replace")[-2000:])
        wait_for(self.healthy, timeout, "the cluster to be ok on every node with every replica in sync", interval=0.1)
        return self

    @property
    def seeds(self):
        return ["127.0.0.1:%d" % r.port for r in self.servers[:3]]

    def alive(self):
        return [r for r in self.servers if r.proc is not None and r.proc.poll() is None]

    def by_port(self, port):
        return next(r for r in self.servers if r.port == port)

    def info(self, r, section):
        text = r.command("CLUSTER", "INFO") if section == "cluster" else r.command("INFO", section)
        return dict(line.split(":", 1) for line in text.decode().splitlines() if ":" in line)

    def slots(self, via=None):
        """[(start, end, master port)] as a live node sees it."""
        r = via or self.alive()[0]
        return [(int(e[0]), int(e[1]), int(e[2][1])) for e in r.command("CLUSTER", "SLOTS")]

    def masters(self):
        return sorted({p for _, _, p in self.slots()})

    def master_of_slot(self, slot, via=None):
        for s, e, p in self.slots(via):
            if s <= slot <= e:
                return p
        return None

    def replicas_in_sync(self):
        n = 0
        for r in self.alive():
            i = self.info(r, "replication")
            if i.get("role") == "slave" and i.get("master_link_status") == "up":
                n += 1
        return n

    def healthy(self):
        """Every live node says cluster_state:ok and agrees on the masters; every live replica is in sync."""
        views = set()
        for r in self.alive():
            if self.info(r, "cluster").get("cluster_state") != "ok":
                return False
            views.add(tuple(sorted(self.slots(r))))
        want_replicas = sum(1 for r in self.alive() if self.info(r, "replication").get("role") == "slave")
        return len(views) == 1 and self.replicas_in_sync() == want_replicas

    def agreed(self):
        """redis-cli --cluster check finds nothing to fix (what reshard demands first)."""
        cmd = [need_tool("redis-cli"), "--cluster", "check", "127.0.0.1:%d" % self.alive()[0].port]
        if self.password:
            cmd += ["-a", self.password, "--no-auth-warning"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return p.returncode == 0 and b"[ERR]" not in p.stdout

    def node_id(self, r):
        return r.command("CLUSTER", "MYID").decode()

    def add_replica(self, master_port, timeout=60):
        """One more replica of a master (redis-cli --cluster add-node --cluster-slave), in sync."""
        r = Redis(port=cluster_port(), persist=False, password=self.password, args=list(self.args))
        r.args += ["--cluster-config-file", "%s/nodes.conf" % r.dir]
        r.start()
        self.servers.append(r)
        cmd = [need_tool("redis-cli"), "--cluster", "add-node", "127.0.0.1:%d" % r.port, "127.0.0.1:%d" % master_port,
               "--cluster-slave", "--cluster-master-id", self.node_id(self.by_port(master_port))]
        if self.password:
            cmd += ["-a", self.password, "--no-auth-warning"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        check(p.returncode == 0, "redis-cli --cluster add-node failed: %s" % p.stdout.decode(errors="replace")[-2000:])
        wait_for(lambda: self.info(r, "replication").get("master_link_status") == "up" and self.healthy(), timeout,
                 "the new replica of %d in sync" % master_port, interval=0.1)
        return r

    def kill_master(self, port):
        """SIGKILL the master at port; returns time.monotonic() of the kill."""
        self.by_port(port).kill()
        return time.monotonic()

    def wait_failed_over(self, old_port, timeout=30):
        """Until every live node serves all slots without old_port and says cluster_state ok;
        returns the promoted replica's port (the one now serving old_port's first slot)."""
        def done():
            if not self.healthy():
                return None
            if old_port in self.masters():
                return None
            return True
        wait_for(done, timeout, "the replica of %d to take over" % old_port, interval=0.05)
        return self.masters()

    def reshard(self, from_port, to_port, nslots, timeout=120):
        """Move nslots slots from one master to another with redis-cli --cluster reshard
        (MIGRATE key by key: the slots pass through migrating/importing, so clients see ASK and then
        MOVED)."""
        src, dst = self.by_port(from_port), self.by_port(to_port)
        wait_for(self.agreed, 30, "every node to agree on the configuration (redis-cli --cluster check)", interval=0.1)
        cmd = [need_tool("redis-cli"), "--cluster", "reshard", "127.0.0.1:%d" % from_port,
               "--cluster-from", self.node_id(src), "--cluster-to", self.node_id(dst),
               "--cluster-slots", str(nslots), "--cluster-yes", "--cluster-pipeline", "10"]
        if self.password:
            cmd += ["-a", self.password, "--no-auth-warning"]
        return spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def migrate_begin(self, slot, to_port):
        """Start moving one slot by hand, the way redis-cli does it, and stop half-way: the slot is
        importing on to_port, migrating on its master, and every key in it already moved, so a
        client is answered -ASK for it until migrate_end()."""
        src = self.by_port(self.master_of_slot(slot))
        dst = self.by_port(to_port)
        dst.command("CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(src))
        src.command("CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(dst))
        keys = src.command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        if keys:
            args = ["MIGRATE", "127.0.0.1", to_port, "", 0, 5000] + (["AUTH", self.password] if self.password else [])
            src.command(*(args + ["KEYS"] + keys))
        return src.port

    def migrate_end(self, slot, from_port, to_port):
        """The slot belongs to to_port now (SETSLOT NODE on both, then the others): -MOVED from here on."""
        dst_id = self.node_id(self.by_port(to_port))
        self.by_port(to_port).command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        self.by_port(from_port).command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        for r in self.alive():
            if r.port not in (from_port, to_port) and self.info(r, "replication").get("role") == "master":
                r.command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def command_slot_owner(self, key):
        """The master port serving key's slot (by hashing, no Redis call)."""
        return self.master_of_slot(key_slot(key))

    def close(self):
        for r in self.servers:
            r.kill()


def spread_projects(cluster, upstream, n_per_master=2, tries=500):
    """Project names whose routes fall on every master, n_per_master each (deterministic)."""
    by_master = {p: [] for p in cluster.masters()}
    slots = cluster.slots()

    def owner(slot):
        return next(p for s, e, p in slots if s <= slot <= e)
    for i in range(tries):
        name = "app%d" % i
        m = owner(route_slot(upstream, name))
        if len(by_master[m]) < n_per_master:
            by_master[m].append(name)
        if all(len(v) == n_per_master for v in by_master.values()):
            break
    check(all(len(v) == n_per_master for v in by_master.values()), "no spread found: %r" % by_master)
    return by_master


class ClusterWorld(TopologyWorld):
    """One cluster case: the cluster, the mock upstream, one sentryq with redis.cluster (redis.host
    and port point nowhere: with a cluster they must not be used), and the projects it serves."""

    def __init__(self, wait_replicas=0, projects=None, upstream="up", password=None, **cluster_kw):
        from sqtest.world import Project
        self.cluster = RedisCluster(password=password, **cluster_kw).start()
        super().__init__(self.cluster)
        self.password = password
        self.upstream = upstream
        names = projects or [n for v in spread_projects(self.cluster, upstream).values() for n in v]
        self.prjs = [Project(upstream, n, 100 + i) for i, n in enumerate(names)]
        self.wait_replicas = wait_replicas
        self.others = []  # (Sentryq, Mock) of start_other
        self.mirrors = {}  # project name -> [project names it is mirrored to]

    def config(self, port=None, url=None, **over):
        """Config text for a sentryq on port (this world's) against the cluster, forwarding to url
        (this world's mock by default)."""
        from sqtest.sentryq import make_config, upstream_conf
        from sqtest.world import FAULT_SETTINGS
        extra = ['cluster = ( %s );' % ", ".join('"%s"' % a for a in self.cluster.seeds),
                 "wait_replicas = %d;" % self.wait_replicas, "wait_timeout = 0.5;"]
        if self.password:
            extra.append('password = "%s";' % self.password)
        prj_conf = []
        for p in self.prjs:
            c = p.conf()
            if p.name in self.mirrors:
                mir = ", ".join('{ upstream = "%s"; project = "%s"; }' % (self.upstream, m) for m in self.mirrors[p.name])
                c = c.rstrip().rstrip("}") + " mirror = ( %s ); }" % mir
            prj_conf.append(c)
        # redis_timeout 2 (not 1 as in the fault suite): a failover takes ~1.5 s of Redis's node
        # timeout and election; buffer 64 MiB, the default, takes the writes meanwhile.
        settings = dict(FAULT_SETTINGS, prefix="sqc:", redis_timeout=2.0, buffer_bytes=67108864)
        settings.update(over)
        return make_config(port or self.port, 1, [upstream_conf(self.upstream, url or self.mock.url, prj_conf)],
                           redis_extra=" ".join(extra), **settings)

    def start_other(self, **over):
        """One more sentryq on the cluster with its own mock (requests counted per process),
        stopped by close(). Returns (Sentryq, port, Mock)."""
        from sqtest.mock import Mock
        from sqtest.proc import free_port
        from sqtest.sentryq import Sentryq
        m = Mock().start()
        port = free_port()
        sq = Sentryq().start(self.config(port=port, url=m.url, **over), port)
        self.others.append((sq, m))
        return sq, port, m

    def counters(self):
        return self.redis_status().get("cluster") or {}

    def wait_following(self, masters, timeout=30):
        """Until sentryq's /status names exactly these master ports, all connected; returns time.monotonic()."""
        want = sorted("127.0.0.1:%d" % p for p in masters)

        def there():
            r = self.redis_status()
            c = r.get("cluster") or {}
            return (sorted(a for a in r.get("address", "").split(",") if a) == want and
                    c.get("masters_ready") == len(want) and r.get("connected"))
        wait_for(there, timeout, "sentryq on the masters %s" % want, interval=0.05)
        return time.monotonic()

    def close(self):
        for sq, m in self.others:
            if sq.alive():
                try:
                    sq.stop(timeout=10)
                except AssertionError as e:
                    print("# %s" % e, flush=True)
            m.stop()
        super().close()
