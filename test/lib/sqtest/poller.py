#!/usr/bin/python3
"""poller.py (run as `python3 -I`: its directory holds an http.py) - a load-side probe in a process of its own, so the attacking threads of a test (and
their GIL) never delay it: `poller.py status PORT MS` sends GET /status every MS milliseconds on
one keep-alive connection (opened before the attack starts, so a connection cap cannot refuse it);
`poller.py events PORT MS` posts a small valid store event every MS milliseconds. It prints
"READY" once its first request was answered, runs until its stdin closes, then prints one JSON line:
n, errors, statuses, max_ms, p50_ms, p99_ms, over_50ms, the worst samples (seconds since start, ms),
and for events the ids of the events answered 200. Used through sqtest.attack.Poller."""

import http.client
import json
import os
import select
import sys
import time
import uuid

AUTH = "Sentry sentry_key=wow, sentry_version=7, sentry_client=hostile-poller/1.0, sentry_secret=vod_be"


def pct(sorted_ms, q):
    if not sorted_ms:
        return None
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def main():
    kind, port, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000.0
    conn = None
    lat, worst, eids, statuses = [], [], [], {}
    errors = 0
    t0 = time.monotonic()
    ready = False
    while True:
        # Pacing, not synchronisation: one probe per interval; stdin's EOF ends the run.
        if select.select([sys.stdin], [], [], interval if ready else 0)[0]:
            if not os.read(sys.stdin.fileno(), 4096):
                break
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            start = time.monotonic()
            if kind == "status":
                conn.request("GET", "/status")
            else:
                eid = uuid.uuid4().hex
                body = json.dumps({"event_id": eid, "message": "small event under attack"}).encode()
                conn.request("POST", "/api/20/store/", body=body,
                             headers={"X-Sentry-Auth": AUTH, "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            ms = (time.monotonic() - start) * 1000.0
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if kind == "events" and r.status == 200:
                eids.append(eid)
            if ready:  # the first answer (connection set-up, before READY) is not a sample
                lat.append(ms)
                worst.append((round(start - t0, 3), round(ms, 2)))
                worst.sort(key=lambda w: -w[1])
                del worst[5:]
            if r.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            errors += 1
            if conn is not None:
                conn.close()
            conn = None
        if not ready and statuses:
            ready = True
            print("READY", flush=True)
        if not ready and time.monotonic() - t0 > 15:
            break
    s = sorted(lat)
    print(json.dumps({"kind": kind, "n": len(lat), "errors": errors, "statuses": statuses,
                      "max_ms": s[-1] if s else None, "p50_ms": pct(s, 0.5), "p99_ms": pct(s, 0.99),
                      "over_50ms": sum(1 for x in s if x >= 50.0), "worst": worst, "eids": eids,
                      "seconds": round(time.monotonic() - t0, 2)}), flush=True)


if __name__ == "__main__":
    main()
