"""topology_world.py - what the ha and cluster worlds share: one sentryq (self.sq) in front of a
Redis topology (self.topology: a RedisHA or a RedisCluster), the mock upstream (self.mock), the
sentryq's Redis view from /status, the wait for its queue to drain, and the order things stop in."""

from sqtest.proc import wait_for


class TopologyWorld:
    def __init__(self, topology):
        from sqtest.mock import Mock
        from sqtest.proc import free_port
        self.topology = topology
        self.mock = Mock().start()
        self.port = free_port()
        self.sq = None

    def config(self, **over):
        raise NotImplementedError

    def start(self, **over):
        from sqtest.sentryq import Sentryq
        self.sq = Sentryq().start(self.config(**over), self.port)
        return self.sq

    def redis_status(self):
        return self.sq.status()[1]["redis"]

    def wait_drained(self, timeout=60):
        """Until nothing is queued, buffered or waiting for Redis (what never arrives stays missing)."""
        def empty():
            q = self.sq.status()[1]["queue"]
            return q["pending"] == 0 and q["buffered"] == 0 and q["ingest_waiting"] == 0
        wait_for(empty, timeout, "sentryq's queue to drain", interval=0.1)

    def close(self):
        if self.sq and self.sq.alive():
            try:
                self.sq.stop(timeout=10)
            except AssertionError as e:
                print("# %s" % e, flush=True)
        self.mock.stop()
        self.topology.close()
