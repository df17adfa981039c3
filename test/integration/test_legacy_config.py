#!/usr/bin/python3
"""test_legacy_config.py - `sentryq import-legacy-config OLD.py`: a realistic legacy forwarder file
(imports, comments, code around the dict, triple quotes) converted without being run, the output
accepted by `sentryq -t`, the same values Python's own literal parser reads, events forwarded
through the generated config with the real key, secret and id; refusals exit 1 with the line and
no secret; usage errors exit 2."""

import ast
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.fixtures import new_event_id  # noqa: E402
from sqtest.http import parse_sentry_auth, request  # noqa: E402
from sqtest.mock import Mock, rec_body, rec_header  # noqa: E402
from sqtest.proc import check, free_port, tmpdir, wait_for  # noqa: E402
from sqtest.resp import Redis  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import Sentryq, run_cli  # noqa: E402

KEY_VOD, SEC_VOD = "a6f431e198734105aef464f6e702351f", "563b78f7bc1941828df0e5ebd79cc17a"
KEY_MCMS, SEC_MCMS = "0123456789abcdef0123456789abcdef", "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
KEY_LS, SEC_LS = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf", "fedcba9876543210fedcba9876543210"
KEY_DEF, SEC_DEF = "e0e1e2e3e4e5e6e7e8e9eaebecedeeef", "9f9e9d9c9b9a99989796959493929190"

# Would leave a trace (and exit 3) if anything ran the file.
OLD_PY = '''\
#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Sentry forwarder settings (legacy).

config = {"not": "this one, it is in the docstring"}
"""
import os
import sys
from collections import OrderedDict

open(%(marker)r, "w").write("the legacy config was executed")
DEBUG = os.environ.get("FORWARDER_DEBUG") == "1"; WORKERS = 4
LISTEN = ("0.0.0.0", 9000)  # config = {"nor": "this comment"}


def load_overrides(config=None):
    config = config or {}
    return config


# the routing table: DSN key -> upstream, DSN secret -> project
config = {
    # production Sentry
    "wow": {"url": "%(url)s",
            "vod_be": {"key": "%(key_vod)s",
                       "secret": """%(sec_vod)s""",
                       "num": "20"},
            'mcms':   {'key': '%(key_mcms)s', 'secret': '%(sec_mcms)s',
                       'num': 10},  # an int works too
            },
    "ktv": {
        "url": "%(url)s" \\
               "/ktv",
        "lscms": {"key": r"%(key_ls)s",
                  "secret": "%(sec_ls_a)s" "%(sec_ls_b)s",
                  "num": "11",},
    },
    "default": {"url": "%(url)s",
                "default": {"key": "%(key_def)s", "secret": "%(sec_def)s", "num": "30"}},
}


def main():
    for name, upstream in config.items():
        print(name, upstream["url"])
    sys.exit(3)


if __name__ == "__main__":
    main()
'''

S = {}


def write(name, text):
    path = os.path.join(S["dir"], name)
    with open(path, "w") as f:
        f.write(text)
    return path


def old_py(url):
    return OLD_PY % {"marker": S["marker"], "url": url, "key_vod": KEY_VOD, "sec_vod": SEC_VOD,
                     "key_mcms": KEY_MCMS, "sec_mcms": SEC_MCMS, "key_ls": KEY_LS,
                     "sec_ls_a": SEC_LS[:10], "sec_ls_b": SEC_LS[10:], "key_def": KEY_DEF,
                     "sec_def": SEC_DEF}


def setup_module():
    S["dir"] = tmpdir("sentryq-legacy-")
    S["marker"] = os.path.join(S["dir"], "EXECUTED")
    S["redis"] = Redis().start()
    S["mock"] = Mock().start()
    S["old"] = write("OLD.py", old_py(S["mock"].url))
    p = run_cli(["import-legacy-config", S["old"]])
    check(p.returncode == 0, "import-legacy-config exited %r: %r" % (p.returncode, p.stderr))
    check(p.stderr == "", "stderr on success: %r" % p.stderr)
    S["conf"] = p.stdout


def teardown_module():
    if "sq" in S:
        S["sq"].stop()


def legacy_dict(text):
    """The config dict as Python itself reads it: ast.parse + literal_eval, nothing executed."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["config"]:
            return ast.literal_eval(node.value)
    raise AssertionError("no config in the legacy file")


PROJECT_RE = re.compile(r'\{ name = "([^"]*)"; key = "([^"]*)";(?: secret = "([^"]*)";)? id = (\d+)L?; \}')
UPSTREAM_RE = re.compile(r'\{ name = "([^"]*)"; url = "([^"]*)";\n    projects = \((.*?)\n    \); \}', re.S)


def generated(conf):
    """{upstream: (url, {project: (key, secret, id)})} and the default route of the output."""
    ups = {}
    for name, url, body in UPSTREAM_RE.findall(conf):
        ups[name] = (url, {p: (k, s or None, int(i)) for p, k, s, i in PROJECT_RE.findall(body)})
    m = re.search(r'\ndefault_route = \{ upstream = "([^"]*)"; project = "([^"]*)"; \};', conf)
    return ups, (m.groups() if m else None)


# ------------------------------------------------------------ conversion

def test_output_is_a_valid_config():
    path = write("sentryq.conf", S["conf"])
    p = run_cli(["-t", "-c", path])
    check(p.returncode == 0, "-t on the generated config exited %r: %r\n%s" % (p.returncode, p.stderr, S["conf"]))
    check("(2 upstreams)" in p.stdout, "-t output %r" % p.stdout)


def test_the_file_was_never_run():
    check(not os.path.exists(S["marker"]), "import-legacy-config executed the Python file")


def test_header_and_hints():
    conf = S["conf"]
    check(conf.startswith("# sentryq configuration imported from %s\n" % S["old"]), "header %r" % conf[:200])
    check("#   listen = {" in conf and "#   redis  = {" in conf, "no listen/redis hint")
    check(not re.search(r"^(listen|redis)\s*=", conf, re.M), "listen/redis set instead of left at defaults")


def test_same_values_as_python_reads():
    want = legacy_dict(open(S["old"]).read())
    ups, route = generated(S["conf"])
    check(list(ups) == ["wow", "ktv"], "upstreams %r" % list(ups))
    for name, entry in want.items():
        if name == "default":
            continue
        url, projects = ups[name]
        check(url == entry["url"], "%s url %r, want %r" % (name, url, entry["url"]))
        legacy = {k: v for k, v in entry.items() if k != "url"}
        check(list(projects)[:len(legacy)] == list(legacy),
                "%s projects %r, want %r first" % (name, list(projects), list(legacy)))
        for pname, p in legacy.items():
            check(projects[pname] == (p["key"], p["secret"], int(p["num"])),
                    "%s/%s differs from the legacy values" % (name, pname))
    # 'default' has wow's url but a key and num no project of wow has: added to wow as 'default'
    check(route == ("wow", "default"), "default_route %r" % (route,))
    check(list(ups["wow"][1]) == ["vod_be", "mcms", "default"], "wow projects %r" % list(ups["wow"][1]))
    check(ups["wow"][1]["default"] == (KEY_DEF, SEC_DEF, 30), "default project %r" % (ups["wow"][1].get("default"),))


# ------------------------------------------------------------ forwarding through it

def start_relay():
    if "sq" not in S:
        port = free_port()
        text = ('listen = { address = "127.0.0.1"; port = %d; };\n'
                'redis = { host = "127.0.0.1"; port = %d; prefix = "sentryq-legacy:"; };\n'
                'forward = { retry_initial = 0.2; retry_max = 1.0; };\n' % (port, S["redis"].port)) + S["conf"]
        S["sq"] = Sentryq().start(text, port)
    return S["sq"]


def post_store(key, secret, path="/api/1/store/"):
    eid = new_event_id()
    auth = "Sentry sentry_key=%s, sentry_version=7" % key + (", sentry_secret=%s" % secret if secret else "")
    body = json.dumps({"event_id": eid, "message": "legacy import", "platform": "python"}).encode()
    r = request(start_relay().port, "POST", path,
                  [("Content-Type", "application/json"), ("X-Sentry-Auth", auth)], body)
    check(r.status == 200, "store answered %r" % r)
    check(r.json().get("id") == eid, "answer %r" % r.body)
    return eid


def record_for(eid):
    def find():
        for rec in S["mock"].requests():
            if eid.encode() in rec_body(rec):
                return rec
        return None
    return wait_for(find, 15, "event %s at the mock upstream" % eid)


def auth_of(rec):
    xsa = rec_header(rec, "X-Sentry-Auth")
    check(len(xsa) == 1, "X-Sentry-Auth upstream %r" % xsa)
    return dict(parse_sentry_auth(xsa[0]))


def test_existing_dsn_reaches_the_real_project():
    """http://wow:vod_be@relay/1 keeps working: forwarded to /api/20/ with the real credentials."""
    rec = record_for(post_store("wow", "vod_be"))
    check(rec["path"] == "/api/20/store/", "forwarded to %r, want /api/20/store/" % rec["path"])
    d = auth_of(rec)
    check(d.get("sentry_key") == KEY_VOD and d.get("sentry_secret") == SEC_VOD,
            "credentials upstream %r" % d)
    check("vod_be" not in json.dumps(rec["headers"]), "relay-side project name sent upstream")


def test_int_num_and_path_prefix_upstream():
    rec = record_for(post_store("wow", "mcms", "/api/7/store/"))
    check(rec["path"] == "/api/10/store/", "mcms forwarded to %r" % rec["path"])
    check(auth_of(rec).get("sentry_key") == KEY_MCMS, "mcms key")
    rec = record_for(post_store("ktv", "lscms"))
    check(rec["path"] == "/ktv/api/11/store/", "lscms forwarded to %r" % rec["path"])
    d = auth_of(rec)
    check(d.get("sentry_key") == KEY_LS and d.get("sentry_secret") == SEC_LS, "lscms credentials %r" % d)


def test_unknown_dsn_takes_the_default_route():
    rec = record_for(post_store("nobody", "nothing"))
    check(rec["path"] == "/api/30/store/", "default route forwarded to %r" % rec["path"])
    check(auth_of(rec).get("sentry_key") == KEY_DEF, "default route key")


# ------------------------------------------------------------ refusals and usage

def line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("needle %r not in the file" % needle)


def expect_refused(name, text, needle, says):
    path = write(name, text)
    p = run_cli(["import-legacy-config", path])
    check(p.returncode == 1, "%s: exit %r, want 1 (stderr %r)" % (name, p.returncode, p.stderr))
    check(p.stdout == "", "%s: partial output on refusal: %r" % (name, p.stdout[:200]))
    want = "%s:%d: " % (path, line_of(text, needle))
    check(want in p.stderr, "%s: stderr %r lacks %r" % (name, p.stderr, want))
    check(says in p.stderr, "%s: stderr %r lacks %r" % (name, p.stderr, says))
    for secret in (KEY_VOD, SEC_VOD, KEY_MCMS, SEC_MCMS, "vod_be", "mcms", "lscms"):
        check(secret not in p.stderr, "%s: stderr shows a credential or project name: %r" % (name, p.stderr))
    return p.stderr


def good():
    return old_py("http://127.0.0.1:9")


def test_refuse_duplicate_project():
    text = good().replace("'mcms':   {", "'vod_be':   {")
    expect_refused("dup_project.py", text, "'vod_be':   {",
                   "project #2 of upstream 'wow' has the same name as project #1")


def test_refuse_duplicate_upstream():
    text = good().replace('    "default": {', '    "wow": {"url": "http://127.0.0.1:9", "x": {"key": "k", "num": 1}},\n'
                          '    "default": {')
    expect_refused("dup_upstream.py", text, '"wow": {"url": "http://127.0.0.1:9", "x"', "duplicate upstream 'wow'")


def test_refuse_non_literal():
    text = good().replace('"secret": """%s"""' % SEC_VOD, '"secret": os.environ["VOD_SECRET"]')
    expect_refused("name.py", text, 'os.environ["VOD_SECRET"]', "is not a plain literal")
    text = good().replace('"num": "20"', '"num": str(20)')
    expect_refused("call.py", text, "str(20)", "function call")
    text = good().replace('"url": "http://127.0.0.1:9" \\', '"url": f"http://{HOST}" \\')
    expect_refused("fstring.py", text, 'f"http://{HOST}"', "f-string")
    text = good().replace('"num": "11",', '"num": "1" + suffix,')
    expect_refused("expr.py", text, '"1" + suffix', "an expression ('+')")


def test_refuse_missing_key_bad_num_bad_url():
    text = good().replace("{'key': '%s', 'secret'" % KEY_MCMS, "{'secret'")
    expect_refused("nokey.py", text, "'mcms':   {'secret'", "project #2 of upstream 'wow' has no key")
    text = good().replace("'num': 10}", "'num': 'ten'}")
    expect_refused("num.py", text, "'num': 'ten'}", "num must be a number")
    text = good().replace('"wow": {"url": "http://127.0.0.1:9",', '"wow": {"url": "ftp://127.0.0.1:9",')
    expect_refused("url.py", text, '"wow": {"url": "ftp', "url must start with http:// or https://")
    text = good().replace('"wow": {"url": "http://127.0.0.1:9",', '"wow": {')
    expect_refused("nourl.py", text, '"wow": {', "upstream 'wow' has no url")


def test_refuse_bad_names():
    text = good().replace('"ktv": {', '"k tv": {')
    expect_refused("upname.py", text, '"k tv": {', "the name may contain only letters, digits")
    text = good().replace("'mcms':", "'mc/ms':")
    err = expect_refused("projname.py", text, "'mc/ms':", "project #2 of upstream 'wow': the name may contain")
    check("mc/ms" not in err, "project name echoed: %r" % err)


def test_refuse_no_config():
    path = write("noconfig.py", "import os\nsettings = {}\n")
    p = run_cli(["import-legacy-config", path])
    check(p.returncode == 1, "exit %r" % p.returncode)
    check("noconfig.py: no top-level 'config = {...}' assignment" in p.stderr, "stderr %r" % p.stderr)


def test_refuse_changed_after_assignment():
    text = good().replace("\n\ndef main():", "\nconfig['wow']['url'] = 'http://elsewhere'\n\ndef main():")
    expect_refused("changed.py", text, "config['wow']['url'] =", "changes 'config'")


def test_usage_and_unreadable():
    p = run_cli(["import-legacy-config"])
    check(p.returncode == 2 and "usage: sentryq import-legacy-config" in p.stderr, "no file: %r" % (p,))
    p = run_cli(["import-legacy-config", "a.py", "b.py"])
    check(p.returncode == 2, "two files: exit %r" % p.returncode)
    p = run_cli(["import-legacy-config", os.path.join(S["dir"], "absent.py")])
    check(p.returncode == 1 and "absent.py: cannot open" in p.stderr, "absent: %r" % (p,))
    p = run_cli(["-h"])
    check("import-legacy-config" in p.stdout, "-h does not mention import-legacy-config")


if __name__ == "__main__":
    main(globals())
