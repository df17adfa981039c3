"""failover.py - the shape the ha and cluster failover cases share: a paced Loader over the
world's projects, a master killed once enough events are acknowledged, the wait for the promotion
and for sentryq to follow, then the delivery accounting and the checks that hold for both (every
answer 200 or 503, writes acknowledged after sentryq followed, the CLI finds the new master, every
acknowledged event delivered with wait_replicas >= 1, the loss printed with 0)."""

import time

from sqtest.ledger import Delivery, Ledger, Loader, check_delivery
from sqtest.proc import check, wait_for
from sqtest.sentryq import run_cli

RATE = 300        # events per second, paced
TOTAL = 3000      # ~10 s of load
KILL_AFTER = 600  # acknowledged before the master is killed


class FailoverRun:
    """One run. kill() kills the master and returns its time; promoted() waits for the new
    master(s) and returns them; following(new) waits for sentryq to follow and returns that time.
    Both are called again after the load, so that new is the master(s) the topology settled on."""

    def __init__(self, world, prjs, tag):
        self.w = world
        self.led = Ledger()
        self.eids = [self.led.make(prjs[i % len(prjs)], tag, i) for i in range(TOTAL)]

    def run(self, kill, promoted, following):
        load = Loader(self.led, self.w.port, self.eids, workers=8, rate=RATE).start()
        wait_for(lambda: load.acked() >= KILL_AFTER, 30, "%d events acknowledged" % KILL_AFTER, interval=0.05)
        self.t_kill = kill()
        check(not load.done(), "the load finished before the master was killed")
        self.new = promoted()
        self.t_promoted = time.monotonic()
        self.t_followed = following(self.new)
        load.join(120)
        self.w.wait_drained(60)
        # The topology may have failed over again meanwhile (seen on a fresh machine: sentinels
        # failed the promoted replica over 2 s later): new is where it settled, sentryq there too.
        self.new = promoted()
        following(self.new)
        self.d = Delivery(self.led, self.w.mock.requests())
        self.answers = self.led.statuses()
        self.after = sum(1 for e in self.led.acked if self.led.t_answer[e] > self.t_followed)
        return self

    def figures(self):
        """The SUMMARY line's common part."""
        return "failover_s=%.2f promoted_s=%.2f lost=%d acked_after_failover=%d unacked_delivered=%d" % (
            self.t_followed - self.t_kill, self.t_promoted - self.t_kill, len(self.d.missing), self.after,
            len(self.d.unacked_delivered))

    def check(self, wait_replicas):
        check(set(self.answers) <= {"200", "503"}, "answers other than 200 and 503: %s" % self.answers)
        check(self.after > 0, "nothing acknowledged after sentryq followed the failover: %s" % self.answers)
        # The CLI tools reach Redis through the same layer as the server: they find the new master too.
        cli = run_cli(["-c", self.w.sq.config_path, "dead", "list"])
        check(cli.returncode == 0, "sentryq dead list after the failover: rc %d: %s" % (cli.returncode, cli.stderr))
        if wait_replicas >= 1:
            check_delivery(self.led, self.d, allow_unacked=True)
        else:
            check(not self.d.corrupt and not self.d.stray, "corrupt %d, stray %d" % (len(self.d.corrupt), self.d.stray))
            print("# wait_replicas 0: %d of %d acknowledged events lost with the master (not asserted)" % (
                len(self.d.missing), len(self.led.acked)), flush=True)
