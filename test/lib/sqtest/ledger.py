"""ledger.py - the delivery accounting of the fault cases: a Ledger of sent and acknowledged events,
a paced concurrent Loader, what the mocks received (Delivery), the per-case SUMMARY line and the
delivery checks.

At-least-once: sentryq deletes an entry only after the upstream answered 2xx and Redis confirmed the
XACK+XDEL; a kill, a timeout whose answer was lost, or a Redis outage between the two resends the
entry. So an acknowledged event must arrive at least once; arriving twice is allowed and only counted.
"""

import json
import re
import threading
import time
import zlib

from sqtest.fixtures import decode_body, new_event_id, sdk_envelope
from sqtest.http import Response, request
from sqtest.mock import rec_body, rec_header
from sqtest.proc import check

EID_RE = re.compile(rb'"event_id":\s*"([0-9a-f]{32})"')


def eid_of(body):
    m = EID_RE.search(body[:300])
    return m.group(1).decode() if m else None


def rec_eid(rec):
    """The event id of a mock record: of its body after Content-Encoding (a store event, or an
    envelope's header line); None when there is none."""
    ce = rec_header(rec, "Content-Encoding")
    try:
        return eid_of(decode_body(rec_body(rec), ce[0] if ce else None))
    except (OSError, EOFError, ValueError, zlib.error):
        return None


def records_by_eid(records):
    """{event id: [records]} of mock records, in the order they came."""
    out = {}
    for rec in records:
        out.setdefault(rec_eid(rec), []).append(rec)
    return out


class Ledger:
    """Every event a case made: body, route, SDK answer. Thread-safe for the Loader."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = {}    # eid -> (project, body)
        self.answer = {}    # eid -> status int, or "error: ..."
        self.acked = set()
        self.t_answer = {}  # eid -> time.monotonic() of the answer
        self.responses = {}  # eid -> Response (kept for non-2xx only)
        self.endpoint = {}  # eid -> "envelope/" for envelopes (default: "store/")

    def make(self, prj, tag, i):
        eid = new_event_id()
        pad = ("%s-%d-" % (tag, i)) * (1 + (i * 37) % 40)
        doc = {"event_id": eid, "message": "fault %s #%d \u263a" % (tag, i), "platform": "python",
               "level": "error", "extra": {"pad": pad, "n": i}}
        body = json.dumps(doc, ensure_ascii=False).encode()
        with self.lock:
            self.events[eid] = (prj, body)
        return eid

    def make_envelope(self, prj, kinds):
        """An envelope of real SDK items (kinds: "transaction", "event"), posted to envelope/."""
        eid = new_event_id()
        body = sdk_envelope(kinds, eid)
        with self.lock:
            self.events[eid] = (prj, body)
            self.endpoint[eid] = "envelope/"
        return eid

    def post(self, port, eid, timeout=10.0):
        """Returns the Response; status 0 (body: the exception) when the connection failed."""
        prj, body = self.events[eid]
        ep = self.endpoint.get(eid, "store/")
        ctype = "application/x-sentry-envelope" if ep == "envelope/" else "application/json"
        try:
            r = request(port, "POST", prj.api + ep, [("X-Sentry-Auth", prj.auth()),
                        ("Content-Type", ctype)], body, timeout=timeout)
            res = r.status
        except Exception as e:  # connection refused / reset while sentryq dies: not acknowledged
            r, res = Response(0, [], repr(e).encode()), "error:%s" % type(e).__name__
        with self.lock:
            self.answer[eid] = res
            self.t_answer[eid] = time.monotonic()
            if isinstance(res, int) and 200 <= res < 300:
                try:
                    ok = r.json().get("id")
                except (ValueError, AttributeError):
                    ok = None
                self.acked.add(eid)
                if ok != eid:
                    self.answer[eid] = "2xx-bad-id %r" % (ok,)
            else:
                self.responses[eid] = r
        return r

    def send(self, port, prj, tag, i, timeout=10.0):
        eid = self.make(prj, tag, i)
        return eid, self.post(port, eid, timeout)

    def send_envelope(self, port, prj, kinds, timeout=10.0):
        eid = self.make_envelope(prj, kinds)
        return eid, self.post(port, eid, timeout)

    def of(self, prj):
        return [e for e, (p, _) in self.events.items() if p is prj]

    def statuses(self):
        out = {}
        for v in self.answer.values():
            k = str(v) if isinstance(v, int) else v.split(" ")[0]
            out[k] = out.get(k, 0) + 1
        return out

    def bad_ids(self):
        return [e for e, v in self.answer.items() if isinstance(v, str) and v.startswith("2xx-bad-id")]


class Loader:
    """Posts events from a list with `workers` concurrent connections, paced to `rate` per second
    (0 = as fast as answers come). stop() makes workers finish their current request and quit."""

    def __init__(self, ledger, port, eids, workers=8, rate=0):
        self.ledger, self.port, self.eids, self.rate = ledger, port, list(eids), rate
        self.next = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.attempted = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]
        self.t0 = None

    def start(self):
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def _take(self):
        with self.lock:
            if self.stopping.is_set() or self.next >= len(self.eids):
                return None, 0
            i = self.next
            self.next += 1
            self.attempted.append(self.eids[i])
            return self.eids[i], i

    def _run(self):
        while True:
            eid, i = self._take()
            if eid is None:
                return
            if self.rate:
                due = self.t0 + i / float(self.rate)
                if due > time.monotonic():
                    self.stopping.wait(due - time.monotonic())  # pacing the load, not synchronising
            self.ledger.post(self.port, eid)

    def acked(self):
        with self.ledger.lock:
            return sum(1 for e in self.attempted if e in self.ledger.acked)

    def stop(self):
        self.stopping.set()

    def join(self, timeout=60):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        check(not any(t.is_alive() for t in self.threads), "load threads did not finish in %ss" % timeout)

    def done(self):
        return not any(t.is_alive() for t in self.threads)


class Delivery:
    """What the mocks received for a ledger: per event id the 2xx bodies and all attempts. A record
    a Mock(digest_over=...) kept only as a digest is not a ledger event's (those are small) and is
    skipped: its case checks it by rec_digest."""

    def __init__(self, ledger, records):
        self.ok = {}        # eid -> [bodies answered 2xx]
        self.attempts = {}  # eid -> [records]
        self.stray = 0      # 2xx requests whose body names no event of the ledger
        self.ok_t = {}      # eid -> [mock time of each 2xx]
        for rec in records:
            if "body_b64" not in rec:
                continue
            body = rec_body(rec)
            eid = eid_of(body)
            if eid not in ledger.events:
                if isinstance(rec["status"], int) and 200 <= rec["status"] < 300:
                    self.stray += 1
                continue
            self.attempts.setdefault(eid, []).append(rec)
            if isinstance(rec["status"], int) and 200 <= rec["status"] < 300:
                self.ok.setdefault(eid, []).append(body)
                self.ok_t.setdefault(eid, []).append(rec.get("answer_at", rec["t"]))
        self.corrupt = [e for e, bodies in self.ok.items()
                        if any(b != ledger.events[e][1] for b in bodies)]
        self.dups = sum(len(b) - 1 for b in self.ok.values())
        self.missing = [e for e in ledger.acked if e not in self.ok]
        self.unacked_delivered = [e for e in self.ok if e not in ledger.acked]
        # Smallest gap between two 2xx deliveries of one event: ~0 means two sends of one entry in
        # parallel (not a lost answer being retried).
        gaps = [b - a for ts in self.ok_t.values() for a, b in zip(sorted(ts), sorted(ts)[1:])]
        self.dup_gap_min = min(gaps) if gaps else None

    def last_first_ok(self, eids):
        """When the last of eids first arrived (mock time of each one's first 2xx): all delivered by then."""
        return max(min(self.ok_t[e]) for e in eids)

    def latencies(self, ledger, eids):
        """{eid: seconds from the SDK's answer to the first 2xx at the mock} (same host clock)."""
        return {e: min(self.ok_t[e]) - ledger.t_answer[e] for e in eids}

    def delivered_at(self, eid):
        """The mock's time.monotonic() of the first 2xx answer for eid (None: not delivered)."""
        ts = self.ok_t.get(eid)
        return min(ts) if ts else None

    def last_delivered_at(self, eids):
        """When the last of eids was delivered (its first 2xx), by the mock's clock."""
        ts = [self.delivered_at(e) for e in eids]
        check(ts and all(t is not None for t in ts), "last_delivered_at: %d of %d not delivered" % (
            sum(1 for t in ts if t is None), len(ts)))
        return max(ts)

    def first_attempt_at(self, eid):
        """The mock's time.monotonic() of the first request for eid that reached it (None: none)."""
        recs = self.attempts.get(eid)
        return min(r["t"] for r in recs) if recs else None


def summary(case, ledger, d, counters, extra=""):
    """The line the lead copies into the issue note."""
    if d.dup_gap_min is not None:
        extra = ("dup_gap_min=%.3fs " % d.dup_gap_min) + extra
    line = ("# SUMMARY %s: sent=%d acknowledged=%d delivered_unique=%d duplicates=%d corrupt=%d "
            "stray=%d dead=%s retried=%s statuses=%s%s" % (
                case, len(ledger.answer), len(ledger.acked), len(d.ok), d.dups, len(d.corrupt),
                d.stray, counters.get("dead"), counters.get("retried"),
                json.dumps(ledger.statuses(), sort_keys=True), (" " + extra) if extra else ""))
    print(line, flush=True)


def check_delivery(ledger, d, allow_unacked=True):
    """Acknowledged events all arrived, byte-identical; duplicates are at-least-once and only counted."""
    check(not ledger.bad_ids(), "2xx answers with a wrong id: %s" % ledger.bad_ids()[:3])
    check(not d.missing, "%d acknowledged events never reached the upstream (e.g. %s)" % (
        len(d.missing), d.missing[:3]))
    check(not d.corrupt, "%d events arrived with different body bytes (e.g. %s)" % (
        len(d.corrupt), d.corrupt[:3]))
    check(not d.stray, "%d 2xx upstream requests carry no event id we sent" % d.stray)
    if not allow_unacked:
        check(not d.unacked_delivered, "%d events answered non-2xx to the SDK were forwarded anyway "
              "(e.g. %s: %s)" % (len(d.unacked_delivered), d.unacked_delivered[:2],
                                 [ledger.answer[e] for e in d.unacked_delivered[:2]]))
