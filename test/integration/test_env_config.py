#!/usr/bin/python3
"""test_env_config.py - configuration from the environment: SENTRYQ_<SECTION>_<KEY> overrides a
key of the file (a running sentryq listens, connects and logs as the variables say), a bad value
is refused naming the variable and not its value, ${NAME} references bring secrets from the
environment (an unset one is named), SENTRYQ_CONFIG names the file, and `sentryq -t --print`
shows the configuration in force with every key, secret, password and project name masked."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id  # noqa: E402
from sqtest.http import parse_sentry_auth, request  # noqa: E402
from sqtest.mock import Mock, rec_header  # noqa: E402
from sqtest.proc import check, free_port, port_open, wait_for  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import (AUTH_VOD, KEY_VOD, KEY_WEB, SEC_VOD, SEC_WEB, Sentryq, make_config,  # noqa: E402
                            project_conf, run_cli, standard_upstreams, upstream_conf)

REF_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
S = {}


def setup_module():
    S["redis"] = Redis().start()
    S["mock"] = Mock().start()


def env(**over):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SENTRYQ_") or k in ("SENTRYQ_BIN",)}
    e.update(over)
    return e


def conf(port=None, redis_port=None, ups=None, **settings):
    return make_config(port or free_port(), redis_port or S["redis"].port, ups or standard_upstreams(S["mock"].url),
                       **settings)


def write(text, name="env.conf"):
    path = os.path.join(Sentryq().dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def post(port):
    body = ('{"event_id":"%s","message":"env"}' % new_event_id()).encode()
    return request(port, "POST", "/api/1/store/", [("X-Sentry-Auth", AUTH_VOD), ("Content-Type", "application/json")],
                   body)


def test_overrides_reach_the_running_relay():
    """The file says port A, a dead Redis port and text logs; the variables say port B, the real
    Redis and JSON: sentryq listens on B, queues through Redis and logs JSON."""
    file_port, port = free_port(), free_port()
    text = conf(file_port, free_port(), log_format="text")
    e = env(SENTRYQ_LISTEN_PORT=str(port), SENTRYQ_REDIS_PORT=str(S["redis"].port), SENTRYQ_REDIS_HOST="127.0.0.1",
            SENTRYQ_LOG_FORMAT="json", SENTRYQ_RATE_LIMITS_PASSTHROUGH="yes")
    sq = Sentryq().start(text, port, env=e)
    try:
        check(not port_open(file_port), "listening on the file's port too")
        check(post(port).status == 200, "not accepted")
        wait_for(lambda: S["mock"].count() >= 1, 15, "the event forwarded")
    finally:
        sq.stop()
    lines = sq.json_log()
    check(lines and all("msg" in ln for ln in lines), "SENTRYQ_LOG_FORMAT=json did not make JSON lines")


def test_bad_values_name_the_variable_not_the_value():
    path = write(conf())
    cases = [("SENTRYQ_LISTEN_PORT", "99999", "listen.port"), ("SENTRYQ_FORWARD_TIMEOUT", "soonish", "forward.timeout"),
             ("SENTRYQ_RATE_LIMITS_PASSTHROUGH", "perhaps", "rate_limits.passthrough"),
             ("SENTRYQ_LOG_FORMAT", "yamlish", "log.format"), ("SENTRYQ_REDIS_PASSWORD", "p4ss\tword!", "redis.password")]
    for var, val, key in cases:
        r = run_cli(["-t", "-c", path], env=env(**{var: val}))
        check(r.returncode == 1, "%s=%r: exit %d" % (var, val, r.returncode))
        check(r.stderr.startswith("sentryq: environment %s: key '%s': " % (var, key)), "%s: %r" % (var, r.stderr))
        check(val not in r.stderr, "%s: the value is quoted: %r" % (var, r.stderr))


def test_references_bring_secrets_from_the_environment():
    ups = [upstream_conf("wow", S["mock"].url, [project_conf("vod_be", KEY_VOD, 20, "${SQ_IT_SECRET}")])]
    port = free_port()
    text = conf(port, ups=ups)
    path = write(text)
    r = run_cli(["-t", "-c", path], env=env())
    check(r.returncode == 1 and "upstreams[0].projects[0].secret" in r.stderr and
          "environment variable 'SQ_IT_SECRET' is not set" in r.stderr, "unset reference: %r" % r.stderr)
    check(run_cli(["-t", "-c", path], env=env(SQ_IT_SECRET=REF_SECRET)).returncode == 0, "-t with the variable set")
    S["mock"].reset()
    sq = Sentryq()
    sq.secrets.add(REF_SECRET)   # never in a log either
    sq.start(text, port, env=env(SQ_IT_SECRET=REF_SECRET))
    try:
        check(post(port).status == 200, "not accepted")
        rec = S["mock"].wait_count(1)[0]
        pairs = dict(parse_sentry_auth(rec_header(rec, "X-Sentry-Auth")[0]))
        check(pairs.get("sentry_secret") == REF_SECRET and pairs.get("sentry_key") == KEY_VOD,
              "forwarded credentials %r" % pairs)
    finally:
        sq.stop()


def test_sentryq_config_names_the_file():
    path = write(conf())
    r = run_cli(["-t"], env=env(SENTRYQ_CONFIG=path))
    check(r.returncode == 0 and "configuration ok" in r.stdout, "SENTRYQ_CONFIG: %r %r" % (r.stdout, r.stderr))


def test_print_shows_the_configuration_in_force_masked():
    port = free_port()
    text = conf(redis_extra='password = "r3dis-Pa55word";',
                extra='default_route = { upstream = "wow"; project = "vod_be"; };\n')
    path = write(text)
    r = run_cli(["-t", "--print", "-c", path],
                env=env(SENTRYQ_LISTEN_PORT=str(port), SENTRYQ_LOG_LEVEL="warn", SENTRYQ_QUEUE_MAX_PENDING="77"))
    check(r.returncode == 0, "-t --print exit %d: %s" % (r.returncode, r.stderr))
    out = r.stdout
    for want in ("listen.port = %d;" % port, 'log.level = "warn";', "queue.max_pending = 77;",
                 'redis.password = "********";', 'upstreams[0].name = "wow";', "upstreams[0].projects[0].id = 20;",
                 'upstreams[0].projects[0].key = "********";', 'upstreams[0].projects[0].name = "********";',
                 'default_route.project = "********";', 'default_route.upstream = "wow";',
                 "upstreams[0].projects[1].id = 1;"):
        check(want + "\n" in out, "--print lacks %r:\n%s" % (want, out))
    for sec in (KEY_VOD, KEY_WEB, SEC_VOD, SEC_WEB, "r3dis-Pa55word", "vod_be", "a6f4"):
        check(not re.search(r"(?<![A-Za-z0-9_])%s" % re.escape(sec), out), "--print shows a secret (%s...)" % sec[:3])
    for line in out.splitlines():
        check(line.startswith("#") or re.match(r"^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)* = .+;$", line),
              "not a key = value; line: %r" % line)


if __name__ == "__main__":
    main(globals())
