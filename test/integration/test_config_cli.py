#!/usr/bin/python3
"""test_config_cli.py - command line (-t, -V, -h, -c, SENTRYQ_CONFIG) and config validation
messages (file:line and key name), and that a bad config never starts a listener."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.http import get_json  # noqa: E402
from sqtest.proc import check, free_port, port_open, spawn, tmpdir, wait_for  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import BIN, WRAPPER, run_cli  # noqa: E402

KEY_VOD, SEC_VOD = "a6f431e198734105aef464f6e702351f", "563b78f7bc1941828df0e5ebd79cc17a"

GOOD = """\
# sentryq test config
listen = { address = "127.0.0.1"; port = %(port)d; max_body_size = 20971520; };
redis  = { host = "127.0.0.1"; port = %(redis_port)d; prefix = "sentryq-cli:"; buffer_bytes = 0; };
forward = { timeout = 5.0; retry_initial = 0.2; retry_max = 2.0; claim_idle = 60.0; };
upstreams = (
  { name = "wow"; url = "%(url)s";
    projects = ( { name = "vod_be"; key = "a6f431e198734105aef464f6e702351f";
                   secret = "563b78f7bc1941828df0e5ebd79cc17a"; id = 20; } ); }
);
default_route = { upstream = "wow"; project = "vod_be"; };
"""

S = {"dir": None}


def conf(text, name):
    if S["dir"] is None:
        S["dir"] = tmpdir("sentryq-cli-")
    path = os.path.join(S["dir"], name)
    with open(path, "w") as f:
        f.write(text)
    return path


def good_text(port=None, redis_port=6379, url="http://127.0.0.1:9001"):
    return GOOD % {"port": port or free_port(), "redis_port": redis_port, "url": url}


def line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("needle %r not in config" % needle)


def expect_config_error(text, name, key=None, needle=None, also=()):
    """-t must exit 1 naming the file, the line of `needle` and the key."""
    path = conf(text, name)
    p = run_cli(["-t", "-c", path])
    msg = p.stderr + p.stdout
    check(p.returncode == 1, "-t on %s exited %r, want 1; output %r" % (name, p.returncode, msg))
    check(name in msg, "message does not name the file %s: %r" % (name, msg))
    if needle:
        ln = line_of(text, needle)
        check(re.search(re.escape(name) + r":%d\b" % ln, msg),
              "message does not give %s:%d: %r" % (name, ln, msg))
    if key:
        check(key in msg, "message does not name key %r: %r" % (key, msg))
    for a in also:
        check(a in msg, "message lacks %r: %r" % (a, msg))
    check(SEC_VOD not in msg, "message echoes a secret: %r" % msg)
    return msg


def test_check_good_config():
    path = conf(good_text(), "good.conf")
    p = run_cli(["-t", "-c", path])
    check(p.returncode == 0, "-t on a good config exited %r: %r" % (p.returncode, p.stderr))


def test_check_good_config_with_path_prefix_and_no_default_route():
    text = good_text(url="http://127.0.0.1:9001/sentry").replace(
        'default_route = { upstream = "wow"; project = "vod_be"; };\n', "")
    p = run_cli(["-t", "-c", conf(text, "good2.conf")])
    check(p.returncode == 0, "-t exited %r: %r" % (p.returncode, p.stderr))


def test_unknown_key_in_group():
    text = good_text().replace('max_body_size = 20971520; };',
                               'max_body_size = 20971520;\n  bogus_knob = 5; };')
    expect_config_error(text, "unknown1.conf", key="bogus_knob", needle="bogus_knob")


def test_unknown_top_level_key():
    text = good_text() + "\nfrobnicate = true;\n"
    expect_config_error(text, "unknown2.conf", key="frobnicate", needle="frobnicate")


def test_unknown_key_in_project():
    text = good_text().replace('id = 20; }', 'id = 20;\n                   colour = "red"; }')
    expect_config_error(text, "unknown3.conf", key="colour", needle="colour")


def test_wrong_type():
    text = good_text().replace('max_body_size = 20971520;', 'max_body_size = "big";')
    expect_config_error(text, "type.conf", key="max_body_size", needle="max_body_size")


def test_syntax_error():
    text = good_text().replace('retry_max = 2.0;', 'retry_max = = 2.0;')
    expect_config_error(text, "syntax.conf", needle="retry_max")


def test_bad_url():
    for i, url in enumerate(["ftp://127.0.0.1:9001", "not a url", "http://", "http://127.0.0.1:99999"]):
        text = good_text(url=url)
        expect_config_error(text, "badurl%d.conf" % i, key="url", needle="url =")


def test_duplicate_upstream():
    up = ('  { name = "wow"; url = "http://127.0.0.1:9002";\n'
          '    projects = ( { name = "other"; key = "0123456789abcdef0123456789abcdef"; id = 3; } ); }\n')
    text = good_text().replace(" ); }\n);", " ); },\n" + up + ");")
    check(text.count('name = "wow"') == 2, "test config not built")
    expect_config_error(text, "dup.conf", also=("wow",))


def test_default_route_unknown_upstream():
    text = good_text().replace('default_route = { upstream = "wow";', 'default_route = { upstream = "nope";')
    expect_config_error(text, "droute.conf", also=("nope",))


MIRRORED = """\
listen = { address = "127.0.0.1"; port = %(port)d; };
redis  = { host = "127.0.0.1"; port = 6379; prefix = "sentryq-cli:"; };
upstreams = (
  { name = "wow"; url = "http://127.0.0.1:9001";
    projects = (
      { name = "vod_be"; key = "a6f431e198734105aef464f6e702351f";
        secret = "563b78f7bc1941828df0e5ebd79cc17a"; id = 20;
        mirror = (
%(mirrors)s
        ); },
      { name = "vod_copy"; key = "b6f431e198734105aef464f6e702351f"; id = 22; } ); },
  { name = "saas"; url = "http://127.0.0.1:9002";
    projects = (
      { name = "vod_saas"; key = "c6f431e198734105aef464f6e702351f"; id = 21; },
      { name = "other_saas"; key = "d6f431e198734105aef464f6e702351f"; id = 23; } ); }
);
"""


def mirrored_text(*mirrors):
    """MIRRORED with vod_be's mirror list: one (upstream, project) per line, marked "# mirror <i>"."""
    lines = "\n".join('          { upstream = "%s"; project = "%s"; }%s  # mirror %d' % (
        m + ("," if i < len(mirrors) - 1 else "", i)) for i, m in enumerate(mirrors))
    return MIRRORED % {"port": free_port(), "mirrors": lines}


def test_mirror_good():
    # to another upstream, and to another project of the same upstream
    p = run_cli(["-t", "-c", conf(mirrored_text(("saas", "vod_saas"), ("wow", "vod_copy")), "mirror-good.conf")])
    check(p.returncode == 0, "-t on a config with mirrors exited %r: %r" % (p.returncode, p.stderr))


def expect_mirror_error(name, mirrors, bad, why, secret_names):
    """Mirror number `bad` of `mirrors` is refused at its own line; no project name shown."""
    text = mirrored_text(*mirrors)
    msg = expect_config_error(text, name, key="mirror[%d]" % bad, needle="# mirror %d" % bad, also=(why,))
    for n in secret_names:
        check(n not in msg, "%s: the message shows project name %r (a DSN secret): %r" % (name, n, msg))


def test_mirror_unknown_upstream():
    expect_mirror_error("mirror-up.conf", [("saas", "vod_saas"), ("nope", "vod_saas")], 1,
                        "names no configured upstream", ["vod_saas", "vod_be"])


def test_mirror_unknown_project():
    expect_mirror_error("mirror-pr.conf", [("saas", "no_such_prj")], 0,
                        "names no project of that upstream", ["no_such_prj", "vod_be"])
    # a project of another upstream is not one of this upstream's
    expect_mirror_error("mirror-pr2.conf", [("saas", "vod_copy")], 0,
                        "names no project of that upstream", ["vod_copy", "vod_be"])


def test_mirror_itself():
    expect_mirror_error("mirror-self.conf", [("saas", "vod_saas"), ("wow", "vod_be")], 1,
                        "names the project itself", ["vod_be"])


def test_mirror_same_destination_twice():
    expect_mirror_error("mirror-dup.conf", [("saas", "vod_saas"), ("wow", "vod_copy"), ("saas", "vod_saas")],
                        2, "names the same project as an earlier mirror", ["vod_saas", "vod_be"])


def test_mirror_list_bounded():
    # 8 mirrors at most: the config has 3 other projects, so a 9th entry is a list too long
    nine = [("saas", "vod_saas"), ("wow", "vod_copy"), ("saas", "other_saas")] * 3
    expect_config_error(mirrored_text(*nine), "mirror-nine.conf", key="mirror", needle="mirror = (",
                        also=("at most 8",))


def test_mirror_missing_project_key():
    text = mirrored_text(("saas", "vod_saas")).replace('{ upstream = "saas"; project = "vod_saas"; }',
                                                       '{ upstream = "saas"; }')
    expect_config_error(text, "mirror-nokey.conf", key="project", needle="# mirror 0")


def test_missing_file():
    path = os.path.join(tmpdir(), "absent.conf")
    p = run_cli(["-t", "-c", path])
    check(p.returncode == 1, "-t on a missing file exited %r" % p.returncode)
    check("absent.conf" in p.stderr + p.stdout, "message does not name the file: %r" % p.stderr)


def test_version():
    p = run_cli(["-V"])
    check(p.returncode == 0, "-V exited %r" % p.returncode)
    check("sentryq" in p.stdout + p.stderr, "-V output %r lacks 'sentryq'" % (p.stdout + p.stderr))
    check(re.search(r"\d+\.\d+", p.stdout + p.stderr), "-V output has no version number")


def test_help():
    p = run_cli(["-h"])
    check(p.returncode == 0, "-h exited %r" % p.returncode)
    out = p.stdout + p.stderr
    check("-c" in out and "-t" in out, "-h output does not describe -c and -t: %r" % out)


def test_sentryq_config_env():
    env = dict(os.environ)
    env["SENTRYQ_CONFIG"] = conf(good_text(), "env-good.conf")
    p = run_cli(["-t"], env=env)
    check(p.returncode == 0, "-t with SENTRYQ_CONFIG=good exited %r: %r" % (p.returncode, p.stderr))
    env["SENTRYQ_CONFIG"] = conf(good_text() + "\nbogus_env_key = 1;\n", "env-bad.conf")
    p = run_cli(["-t"], env=env)
    check(p.returncode == 1, "-t with SENTRYQ_CONFIG=bad exited %r" % p.returncode)
    check("env-bad.conf" in p.stderr + p.stdout, "message does not name the file: %r" % p.stderr)
    env["SENTRYQ_CONFIG"] = conf(good_text() + "\nbogus_env_key = 1;\n", "env-bad2.conf")
    p = run_cli(["-t", "-c", conf(good_text(), "env-cli.conf")], env=env)
    check(p.returncode == 0, "-c must win over SENTRYQ_CONFIG; exited %r: %r" % (p.returncode, p.stderr))


def test_sentryq_config_env_runs():
    """Without -c, SENTRYQ_CONFIG names the file sentryq runs with."""
    redis = Redis().start()
    port = free_port()
    env = dict(os.environ)
    env["SENTRYQ_CONFIG"] = conf(good_text(port=port, redis_port=redis.port), "env-run.conf")
    log = os.path.join(S["dir"], "env-run.stderr")
    with open(log, "wb") as f:
        p = spawn(WRAPPER + [BIN], env=env, stdin=subprocess.DEVNULL, stdout=f, stderr=f)
    try:
        def ready():
            check(p.poll() is None, "sentryq exited %r: %s" % (p.returncode, open(log).read()[-2000:]))
            return get_json(port, "/status")[0] == 200
        wait_for(ready, 15, "sentryq started from SENTRYQ_CONFIG")
        p.terminate()
        rc = p.wait(timeout=15)
        check(rc == 0, "exit %r after SIGTERM" % rc)
    finally:
        if p.poll() is None:
            p.kill()
        redis.kill()


def test_bad_config_refuses_to_start():
    port = free_port()
    text = good_text(port=port) + "\nbogus_start_key = 1;\n"
    path = conf(text, "refuse.conf")
    p = run_cli(["-c", path], timeout=15)
    check(p.returncode not in (0, None), "sentryq with a bad config exited %r" % p.returncode)
    check("refuse.conf" in p.stderr + p.stdout, "start-up error does not name the file: %r" % p.stderr)
    check(not port_open(port), "something listens on %d" % port)


if __name__ == "__main__":
    main(globals())
