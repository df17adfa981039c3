#!/usr/bin/python3
"""test_deadtool.py - `sentryq dead list|replay|purge` against a real redis-server, with dead letters
crafted by XADD (no relay, no upstream): output formats, byte-exact replay, paging, and the error exits."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id  # noqa: E402
from sqtest.proc import check, free_port, tmpdir  # noqa: E402
from sqtest.resp import Redis, RespClient  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import make_config, project_conf, run_cli, upstream_conf  # noqa: E402

PREFIX = "sq-dead:"
DEAD = PREFIX + "dead"
ORIG = ["v", "m", "e", "q", "h", "ip", "k", "id", "c", "s", "t", "b"]
BODY = b"\x00\xff{\"event_id\":\"x\"}\n\x00\r\n\xfe binary \xff\x00"

S = {}


def setup_module():
    S["redis"] = Redis().start()
    S["dir"] = tmpdir("sentryq-dead-")
    S["conf"] = write_conf("dead.conf", S["redis"].port)


def teardown_module():
    S["redis"].kill()


def write_conf(name, redis_port, redis_extra=""):
    text = make_config(free_port(), redis_port, [
        upstream_conf("wow", "http://127.0.0.1:9", [
            project_conf("vod_be", "a6f431e198734105aef464f6e702351f", 20),
            project_conf("web", "b6f431e198734105aef464f6e702351f", 21)]),
        upstream_conf("other", "http://127.0.0.1:9", [
            project_conf("api", "c6f431e198734105aef464f6e702351f", 30)]),
    ], prefix=PREFIX, redis_extra=redis_extra)
    path = os.path.join(S["dir"], name)
    with open(path, "w") as f:
        f.write(text)
    return path


def dead(*args, conf=None):
    return run_cli(["-c", conf or S["conf"], "dead"] + list(args))


def src_of(up, pr):
    return "%sq:%s:%s" % (PREFIX, up, pr)


def original(body=BODY, event_id=None):
    return [("v", b"1"), ("m", b"POST"), ("e", b"envelope/"), ("q", b"sentry_key=abc&x=%00"),
            ("h", b"Content-Type: application/x-sentry-envelope\nContent-Encoding: gzip\n"),
            ("ip", b"10.1.2.3"), ("k", b"a6f431e198734105aef464f6e702351f"),
            ("id", (event_id or new_event_id()).encode()), ("c", b"1"), ("s", b"0"),
            ("t", str(int(time.time() * 1000) - 5000).encode()), ("b", body)]


def as_replayed(kv):
    """A requeued entry restarts its received time (t = now) and keeps the original as t0, so
    max_age does not kill it again; map it back to the original fields for comparison."""
    d = dict(kv)
    check("t0" in d and abs(int(d["t"]) - time.time() * 1000) < 60000,
          "requeued entry lacks t0 or a fresh t: t=%r t0=%r" % (d.get("t"), d.get("t0")))
    return [(k, d["t0"] if k == "t" else v) for k, v in kv if k != "t0"]


def add_dead(up="wow", pr="vod_be", src=None, age_s=0, reason="permanent", status=400, attempts=1,
             body=BODY, event_id=None, r=None):
    """XADD one dead letter as forward writes it; returns (id, original fields)."""
    now = int(time.time() * 1000)
    orig = original(body, event_id)
    extra = [("up", up), ("pr", pr), ("src", src if src is not None else src_of(up, pr)),
             ("oid", "%d-0" % (now - 9000)), ("reason", reason), ("status", str(status)),
             ("attempts", str(attempts)), ("last", str(now - age_s * 1000)),
             ("dead_at", str(now - age_s * 1000))]
    args = ["XADD", DEAD, "*"]
    for k, v in orig + extra:
        args += [k, v]
    eid = (r or S["redis"]).command(*args).decode()
    return eid, orig


def reset():
    keys = S["redis"].command("KEYS", PREFIX + "*")
    if keys:
        S["redis"].command("DEL", *keys)


def xrange(key):
    """[(id, [(field, value), ...]), ...] with byte values, in stream order."""
    out = []
    for eid, kv in S["redis"].command("XRANGE", key, "-", "+"):
        out.append((eid.decode(), [(kv[i].decode(), kv[i + 1]) for i in range(0, len(kv), 2)]))
    return out


def dead_ids():
    return [eid for eid, _ in xrange(DEAD)]


def groups(key):
    info = S["redis"].command("XINFO", "GROUPS", key)
    return [dict(zip(g[::2], g[1::2]))[b"name"].decode() for g in info]


def ok(p, what):
    check(p.returncode == 0, "%s exited %r: stdout %r stderr %r" % (what, p.returncode, p.stdout, p.stderr))


def failed(p, what, needle=None):
    check(p.returncode == 1, "%s exited %r, want 1: %r %r" % (what, p.returncode, p.stdout, p.stderr))
    check(p.stderr.startswith("sentryq: dead: "), "%s: stderr %r lacks 'sentryq: dead: '" % (what, p.stderr))
    if needle:
        check(needle in p.stderr, "%s: stderr %r does not mention %r" % (what, p.stderr, needle))


LINE = re.compile(r"^(\d+-\d+) (\S+)/(\S+) reason=(\S+) status=(\d+) attempts=(\d+) age=(\d+)s size=(\d+)$")


def test_list_text():
    reset()
    id1, _ = add_dead(age_s=120, status=404, attempts=1)
    id2, _ = add_dead(up="other", pr="api", age_s=3, reason="max_attempts", status=503, attempts=7,
                      body=b"x" * 1000)
    p = dead("list")
    ok(p, "dead list")
    lines = p.stdout.splitlines()
    check(len(lines) == 3 and lines[2] == "2 dead letters", "unexpected list output %r" % p.stdout)
    m1, m2 = LINE.match(lines[0]), LINE.match(lines[1])
    check(m1 and m2, "lines do not match the spec format: %r" % lines)
    check(m1.groups()[:6] == (id1, "wow", "vod_be", "permanent", "404", "1"), "line 1 %r" % lines[0])
    check(118 <= int(m1.group(7)) <= 140, "age of a 120 s old letter printed as %s" % m1.group(7))
    check(int(m1.group(8)) == len(BODY), "size %s, body is %d bytes" % (m1.group(8), len(BODY)))
    check(m2.groups()[:6] == (id2, "other", "api", "max_attempts", "503", "7"), "line 2 %r" % lines[1])
    check(int(m2.group(7)) < 60 and m2.group(8) == "1000", "line 2 age/size %r" % lines[1])


def test_list_json():
    reset()
    id1, orig = add_dead(age_s=60, status=0, reason="max_age", attempts=12)
    p = dead("list", "--json")
    ok(p, "dead list --json")
    doc = json.loads(p.stdout)
    check(isinstance(doc, list) and len(doc) == 1, "want a one-element array: %r" % p.stdout)
    o = doc[0]
    want = {"id": id1, "upstream": "wow", "project": "vod_be", "reason": "max_age", "status": 0,
            "attempts": 12, "size": len(BODY), "event_id": dict(orig)["id"].decode()}
    for k, v in want.items():
        check(o.get(k) == v, "json %s = %r, want %r (%r)" % (k, o.get(k), v, o))
    check(isinstance(o.get("age_s"), int) and 58 <= o["age_s"] <= 80, "age_s %r" % o.get("age_s"))
    check(set(o) == set(want) | {"age_s"}, "unexpected keys %r" % sorted(o))


def test_list_empty():
    reset()
    p = dead("list")
    ok(p, "dead list (empty)")
    check(p.stdout == "0 dead letters\n", "empty list printed %r" % p.stdout)
    p = dead("list", "--json")
    ok(p, "dead list --json (empty)")
    check(json.loads(p.stdout) == [], "empty --json printed %r" % p.stdout)


def test_list_pages_past_500():
    reset()
    c = S["redis"].client()
    try:
        ids = [add_dead(r=c)[0] for _ in range(1203)]
    finally:
        c.close()
    p = dead("list")
    ok(p, "dead list (1203)")
    lines = p.stdout.splitlines()
    check(lines[-1] == "1203 dead letters", "last line %r" % lines[-1])
    check([ln.split(" ", 1)[0] for ln in lines[:-1]] == ids, "ids listed differ from the stream's")
    p = dead("list", "--json")
    ok(p, "dead list --json (1203)")
    check([o["id"] for o in json.loads(p.stdout)] == ids, "--json ids differ from the stream's")


def test_replay_one_is_byte_exact_and_creates_group():
    reset()
    id1, orig = add_dead()
    id2, _ = add_dead(pr="web")
    src = src_of("wow", "vod_be")
    check(S["redis"].command("EXISTS", src) == 0, "source stream exists before the test")
    p = dead("replay", id1)
    ok(p, "dead replay ID")
    check(p.stdout == "replayed 1\n", "replay printed %r" % p.stdout)
    got = xrange(src)
    check(len(got) == 1, "source stream has %d entries, want 1" % len(got))
    check(as_replayed(got[0][1]) == orig, "replayed fields differ:\n got  %r\n want %r" % (got[0][1], orig))
    queued = int(S["redis"].command("GET", PREFIX + "bytes") or 0)
    check(queued == len(BODY), "%sbytes is %d after the replay, want the body's %d" % (PREFIX, queued, len(BODY)))
    check(dead_ids() == [id2], "dead stream %r, want only %s" % (dead_ids(), id2))
    # the running relay reads with its group from '>': the new stream must have it, at 0
    check(groups(src) == ["sentryq"], "groups of %s: %r" % (src, groups(src)))
    rd = S["redis"].command("XREADGROUP", "GROUP", "sentryq", "t", "COUNT", "10", "STREAMS", src, ">")
    check(rd and len(rd[0][1]) == 1 and rd[0][1][0][0].decode() == got[0][0],
          "XREADGROUP does not deliver the replayed entry: %r" % rd)


def test_replay_into_existing_group():
    reset()
    src = src_of("other", "api")
    S["redis"].command("XGROUP", "CREATE", src, "sentryq", "$", "MKSTREAM")
    id1, orig = add_dead(up="other", pr="api")
    p = dead("replay", id1)
    ok(p, "dead replay into an existing group")
    got = xrange(src)
    check(len(got) == 1 and as_replayed(got[0][1]) == orig, "source stream %r" % got)
    check(dead_ids() == [], "dead letter still there")


def test_replay_all_across_routes_and_pages():
    reset()
    c = S["redis"].client()
    routes = [("wow", "vod_be"), ("wow", "web"), ("other", "api")]
    want = {r: [] for r in routes}
    try:
        for i in range(620):
            r = routes[i % 3]
            want[r].append(add_dead(up=r[0], pr=r[1], body=BODY + str(i).encode(), r=c)[1])
    finally:
        c.close()
    p = dead("replay", "--all")
    ok(p, "dead replay --all")
    check(p.stdout == "replayed 620\n", "replay --all printed %r" % p.stdout)
    check(S["redis"].command("XLEN", DEAD) == 0, "dead stream not empty after replay --all")
    for r in routes:
        got = [as_replayed(kv) for _, kv in xrange(src_of(*r))]
        check(got == want[r], "stream of %s/%s: %d entries, or fields/order differ" % (r[0], r[1], len(got)))


def test_purge_one_and_all():
    reset()
    id1, _ = add_dead()
    id2, _ = add_dead()
    id3, _ = add_dead()
    p = dead("purge", id2)
    ok(p, "dead purge ID")
    check(p.stdout == "purged 1\n", "purge printed %r" % p.stdout)
    check(dead_ids() == [id1, id3], "dead stream %r after purging %s" % (dead_ids(), id2))
    check(S["redis"].command("EXISTS", src_of("wow", "vod_be")) == 0, "purge wrote to the source stream")
    c = S["redis"].client()
    try:
        for _ in range(700):
            add_dead(r=c)
    finally:
        c.close()
    p = dead("purge", "--all")
    ok(p, "dead purge --all")
    check(p.stdout == "purged 702\n", "purge --all printed %r" % p.stdout)
    check(S["redis"].command("XLEN", DEAD) == 0, "dead stream not empty after purge --all")


def test_unknown_id_exits_1_and_others_still_processed():
    reset()
    id1, _ = add_dead()
    id2, _ = add_dead()
    id3, _ = add_dead()
    ms = id3.split("-")[0]
    p = dead("replay", id1, "1-1", "bogus", ms, id2)
    failed(p, "replay with unknown ids", "1-1")
    check("bogus" in p.stderr and (ms + ":") in p.stderr, "not every unknown id reported: %r" % p.stderr)
    check(p.stdout == "replayed 2\n", "replay printed %r" % p.stdout)
    check(dead_ids() == [id3], "dead stream %r, want only %s (an incomplete id must not match)" % (
        dead_ids(), id3))
    p = dead("purge", "1-1", id3)
    failed(p, "purge with an unknown id", "1-1")
    check(p.stdout == "purged 1\n" and dead_ids() == [], "purge: %r, left %r" % (p.stdout, dead_ids()))


def test_route_not_in_config_is_kept():
    reset()
    gone, _ = add_dead(up="wow", pr="removed")
    alien, _ = add_dead(up="nosuch", pr="vod_be")
    bad_src, _ = add_dead(up="wow", pr="vod_be", src=PREFIX + "q:wow:web")
    good, orig = add_dead()
    p = dead("replay", gone)
    failed(p, "replay of a removed project", "wow/removed")
    check(p.stdout == "replayed 0\n", "printed %r" % p.stdout)
    p = dead("replay", "--all")
    failed(p, "replay --all with unroutable letters", "nosuch/vod_be")
    check(p.stdout == "replayed 1\n", "printed %r" % p.stdout)
    check(dead_ids() == [gone, alien, bad_src], "kept %r, want the three unroutable" % dead_ids())
    check([as_replayed(kv) for _, kv in xrange(src_of("wow", "vod_be"))] == [orig],
          "only the good letter is requeued")
    check(S["redis"].command("EXISTS", src_of("wow", "web")) == 0, "a mismatched src was written to")
    check(S["redis"].command("EXISTS", src_of("wow", "removed")) == 0, "a removed route got a stream")


def test_redis_unreachable():
    conf = write_conf("unreachable.conf", free_port())
    for args in (["list"], ["list", "--json"], ["replay", "--all"], ["replay", "1-1"], ["purge", "--all"]):
        p = dead(*args, conf=conf)
        failed(p, "dead %s without redis" % " ".join(args), "redis")
        check("replayed" not in p.stdout and "purged" not in p.stdout and "dead letters" not in p.stdout,
              "printed a result without redis: %r" % p.stdout)


def test_password_and_db():
    pw = "s3cret-dead-pw"
    redis = Redis(persist=False, password=pw).start()
    port = redis.port
    try:
        c = RespClient(port)
        c.command("AUTH", pw)
        c.command("SELECT", "3")
        eid, _ = add_dead(r=c)
        p = dead("list", conf=write_conf("pw.conf", port, 'password = "%s"; db = 3;' % pw))
        ok(p, "dead list with password and db 3")
        check(p.stdout.startswith(eid + " ") and p.stdout.endswith("1 dead letters\n"), "printed %r" % p.stdout)
        p = dead("list", conf=write_conf("pw-bad.conf", port, 'password = "wrong-pw-x"; db = 3;'))
        failed(p, "dead list with a wrong password", "AUTH")
        check("wrong-pw-x" not in p.stderr + p.stdout, "the password was echoed: %r" % p.stderr)
        c.close()
    finally:
        redis.kill()


def test_usage_errors():
    for args in ([], ["frob"], ["replay"], ["purge"], ["list", "--xml"], ["replay", "--all", "1-1"],
                 ["purge", "--bogus"]):
        p = dead(*args)
        check(p.returncode == 2, "dead %r exited %r, want 2" % (args, p.returncode))
        check("usage" in p.stderr, "dead %r: no usage message: %r" % (args, p.stderr))
    p = run_cli(["-h"])
    check("dead list" in p.stdout and "replay" in p.stdout and "purge" in p.stdout,
          "-h does not describe the dead subcommands: %r" % p.stdout)
    p = run_cli(["-c", S["conf"], "notacommand"])
    check(p.returncode == 2, "an unknown positional argument exited %r" % p.returncode)


if __name__ == "__main__":
    main(globals())
