#!/usr/bin/python3
"""test_deploy_files.py - the container and host files, checked without a Docker engine: the
Dockerfile builds with the steps CI runs (scripts/install-deps, and the meson build of
scripts/test), runs as a non-root user with a HEALTHCHECK on the ready endpoint using a tool its
runtime packages install, and those packages cover every library the binary links; the compose
file's Redis keeps an append-only file; every SENTRYQ_* variable the files set is a real key;
the systemd unit passes `systemd-analyze verify` and has its hardening; the README documents
endpoints, the environment rules, signals and both ways to run."""

import os
import re
import shlex
import shutil
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sqtest.proc import SOURCE_ROOT, check, tmpdir  # noqa: E402
from sqtest.runner import main  # noqa: E402
from sqtest.sentryq import BIN, run_cli  # noqa: E402

SLIM = ("debian:bookworm-slim", "debian:12-slim")
SAMPLE = os.path.join(SOURCE_ROOT, "etc", "sentryq.conf")


def read(*parts):
    with open(os.path.join(SOURCE_ROOT, *parts)) as f:
        return f.read()


def dockerfile():
    """[(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in read("Dockerfile").splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur += line.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    return out


def stages():
    st = []
    for ins, arg in dockerfile():
        if ins == "FROM":
            st.append({"from": arg, "steps": []})
        else:
            check(st, "an instruction before FROM")
            st[-1]["steps"].append((ins, arg))
    return st


def runs(stage):
    """Each RUN split at && into its commands."""
    return [c.strip() for ins, arg in stage["steps"] if ins == "RUN" for c in arg.split("&&")]


def install_deps_list(*mode):
    r = subprocess.run(["bash", os.path.join(SOURCE_ROOT, "scripts", "install-deps")] + list(mode) + ["--list"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    check(r.returncode == 0, "install-deps %s --list: %s" % (" ".join(mode), r.stderr))
    return set(r.stdout.split())


def key_env_names():
    """SENTRYQ_* of every key `sentryq -t --print` shows (the environment's names)."""
    r = run_cli(["-t", "--print", "-c", SAMPLE])
    check(r.returncode == 0, "-t --print on the sample: %s" % r.stderr)
    keys = re.findall(r"^#? ?([a-z_.]+)(?: = | is not set)", r.stdout, re.M)
    return {"SENTRYQ_" + k.replace(".", "_").upper() for k in keys if "[" not in k}


def test_dockerfile_builds_with_the_steps_ci_runs():
    st = stages()
    check(len(st) >= 2, "not a multi-stage build: %d stage(s)" % len(st))
    for s in st:
        check(s["from"].split()[0] in SLIM, "FROM %r is not Debian 12 slim" % s["from"])
    build, final = st[0], st[-1]
    check(build["from"].split()[-1] == "build", "the first stage is not named build")
    ci = read("scripts", "test")
    cmds = runs(build)
    check("scripts/install-deps" in cmds, "the build stage does not run scripts/install-deps: %r" % cmds)
    check("meson setup build" in cmds and "ninja -C build" in cmds, "the build stage's meson steps: %r" % cmds)
    for c in cmds:
        # every build command is the dependency script or a command scripts/test (CI) runs itself
        check(c == "scripts/install-deps" or re.search(r"(^|\|\| |\n)%s( |$)" % re.escape(c), ci, re.M),
              "build step %r is not what scripts/test runs" % c)
    check(re.search(r"^scripts/install-deps --test", ci, re.M), "scripts/test no longer runs install-deps")
    fcmds = runs(final)
    check(any(re.match(r"^\S*install-deps --runtime$", c) for c in fcmds), "no install-deps --runtime: %r" % fcmds)
    steps = dict((ins, arg) for ins, arg in final["steps"] if ins in ("USER", "HEALTHCHECK", "ENTRYPOINT"))
    check(steps.get("USER") not in (None, "root", "0") and not steps["USER"].startswith("0:"),
          "the image runs as %r" % steps.get("USER"))
    hc = steps.get("HEALTHCHECK", "")
    check("/api/relay/healthcheck/ready/" in hc, "HEALTHCHECK is not on the ready endpoint: %r" % hc)
    tool = shlex.split(hc.split("CMD", 1)[1])[0]
    check(tool in install_deps_list("--runtime"), "the HEALTHCHECK's %s is not a runtime package" % tool)
    check("/usr/local/bin/sentryq" in steps.get("ENTRYPOINT", ""), "ENTRYPOINT %r" % steps.get("ENTRYPOINT"))
    copies = [arg for ins, arg in final["steps"] if ins == "COPY"]
    check("etc/sentryq.conf /etc/sentryq/sentryq.conf" in copies, "the config is not at /etc/sentryq: %r" % copies)
    check(any(a.startswith("--from=build ") and "build/sentryq" in a for a in copies), "the binary is not copied")
    envs = " ".join(arg for ins, arg in final["steps"] if ins == "ENV")
    check("SENTRYQ_CONFIG=/etc/sentryq/sentryq.conf" in envs, "SENTRYQ_CONFIG is not set: %r" % envs)
    unknown = set(re.findall(r"\b(SENTRYQ_[A-Z_]+)=", envs)) - key_env_names() - {"SENTRYQ_CONFIG"}
    check(not unknown, "the Dockerfile sets variables that name no key: %s" % sorted(unknown))


def test_runtime_packages_cover_every_linked_library():
    want = install_deps_list("--runtime")
    out = subprocess.run(["ldd", BIN], stdout=subprocess.PIPE, text=True, check=True).stdout
    libs = re.findall(r"=> (/\S+)", out)
    check(len(libs) >= 8, "ldd found %d libraries" % len(libs))
    missing = set()
    for lib in libs:
        r = subprocess.run(["dpkg", "-S", os.path.realpath(lib)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
        if r.returncode != 0:
            r = subprocess.run(["dpkg", "-S", lib], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        check(r.returncode == 0, "no package owns %s" % lib)
        pkg = r.stdout.split(":")[0]
        # libc6 is in every Debian image; sanitizer runtimes only link into the ASan build
        if pkg not in want and pkg != "libc6" and not re.match(r"lib(asan|ubsan|lsan|stdc\+\+|gcc-s)\d", pkg):
            missing.add(pkg)
    check(not missing, "install-deps --runtime lacks %s (linked by the binary)" % sorted(missing))


def test_compose_redis_with_aof_and_sentryq():
    doc = yaml.safe_load(read("docker-compose.yml"))
    svc = doc["services"]
    redis, sq = svc["redis"], svc["sentryq"]
    cmd = redis["command"] if isinstance(redis["command"], list) else shlex.split(redis["command"])
    check("--appendonly" in cmd and cmd[cmd.index("--appendonly") + 1] == "yes", "Redis without AOF: %r" % cmd)
    check(any(v.endswith(":/data") for v in redis.get("volumes", [])), "Redis data not on a volume")
    check(sq.get("build") in (".", {"context": "."}), "sentryq not built from the Dockerfile")
    check("redis" in sq.get("depends_on", {}), "sentryq does not depend on redis")
    env = sq.get("environment", {})
    check(env.get("SENTRYQ_REDIS_HOST") == "redis", "SENTRYQ_REDIS_HOST %r" % env.get("SENTRYQ_REDIS_HOST"))
    unknown = {k for k in env if k.startswith("SENTRYQ_")} - key_env_names() - {"SENTRYQ_CONFIG"}
    check(not unknown, "compose sets variables that name no key: %s" % sorted(unknown))
    grace = re.match(r"^(\d+)s$", str(sq.get("stop_grace_period", "")))
    check(grace and int(grace.group(1)) > 10, "stop_grace_period %r not above shutdown_timeout" %
          sq.get("stop_grace_period"))
    check(any(str(v).endswith(":/var/lib/sentryq") for v in sq.get("volumes", [])), "the spool directory is not kept")


def unit():
    """{section: [(key, value)]} of etc/sentryq.service (keys may repeat, as systemd allows)."""
    out, sec = {}, None
    for n, line in enumerate(read("etc", "sentryq.service").splitlines(), 1):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        m = re.match(r"^\[([A-Za-z]+)\]$", s)
        if m:
            sec = out.setdefault(m.group(1), [])
            continue
        check(sec is not None and re.match(r"^[A-Za-z]+=", s), "etc/sentryq.service:%d: not key=value: %r" % (n, s))
        k, _, v = s.partition("=")
        sec.append((k, v))
    return out


def test_systemd_unit():
    u = unit()
    check(set(u) == {"Unit", "Service", "Install"}, "sections %r" % sorted(u))
    svc = u["Service"]
    one = dict(svc)
    want = {"Restart": "on-failure", "ExecReload": "/bin/kill -HUP $MAINPID", "NoNewPrivileges": "yes",
            "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes", "KillSignal": "SIGTERM",
            "Environment": "SENTRYQ_CONFIG=/etc/sentryq/sentryq.conf"}
    for k, v in want.items():
        check(one.get(k) == v, "%s=%r, want %r" % (k, one.get(k), v))
    check("/var/lib/sentryq" in one.get("ReadWritePaths", "").split(), "the spool directory is not writable")
    check(one.get("User") not in (None, "root"), "runs as %r" % one.get("User"))
    check(int(one.get("TimeoutStopSec", "0s").rstrip("s")) > 10, "TimeoutStopSec not above shutdown_timeout")
    check(dict(u["Install"]).get("WantedBy") == "multi-user.target", "not wanted by multi-user.target")
    exe = shutil.which("systemd-analyze")
    check(exe is not None, "systemd-analyze is missing (scripts/install-deps --test installs systemd)")
    d = tmpdir("sentryq-unit-")
    path = os.path.join(d, "sentryq.service")
    with open(path, "w") as f:  # the binary as built here: verify checks that it exists
        f.write(read("etc", "sentryq.service").replace("/usr/local/bin/sentryq", os.path.abspath(BIN)))
    r = subprocess.run([exe, "verify", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines() if "sentryq.service" in ln]
    check(r.returncode == 0 and not problems, "systemd-analyze verify: rc %d\n%s" % (r.returncode, "\n".join(problems)))


def test_readme_documents_running_and_operating():
    readme = read("README.md")
    for want in ("## Run in a container", "## Run under systemd", "/api/relay/healthcheck/live/",
                 "/api/relay/healthcheck/ready/", "/metrics", "/status", "SENTRYQ_<SECTION>_<KEY>", "${NAME}",
                 "sentryq -t --print", "SIGTERM", "SIGINT", "SIGHUP", "metrics.on_ingest", "log.format",
                 "log.stats_period", "docker compose", "systemctl"):
        check(want in readme, "README.md does not mention %r" % want)


if __name__ == "__main__":
    main(globals())
