#!/usr/bin/python3
"""Starts the daemons the way their systemd units would, without systemd.

    run-units.py ROOT      (as root; check-units.sh runs it in `unshare --net --mount`)

systemd is not PID 1 on CI machines, so this reads each unit's Environment=,
EnvironmentFile= (from ROOT/etc/default, as the package installs them; the package's own
paths in the command line, /usr/bin and /etc/orchard, are taken from ROOT),
WorkingDirectory= and ExecStart= like systemd does ($VAR splits on
whitespace, ${VAR} stays one word, %H and %i specifiers), runs the binaries
of ROOT/usr/bin with that command line, and checks that
  - orchard-server listens on the unit's defaults, and answers 200 on
    http://127.0.0.1:8080/healthz and /readyz (its database under
    /var/lib/orchard, the StateDirectory);
  - orchard-worker.service and orchard-worker@a.service register with it
    under the names the units give (HOST and HOST-a);
  - SIGTERM (the units' KillSignal) stops each within its TimeoutStopSec,
    with exit code 0.
It must run in private network and mount namespaces: it binds the units'
fixed ports, and mounts a tmpfs on /var/lib for the state directories.
The sandboxing directives (User=, ProtectSystem=, ...) are not applied;
systemd-analyze verify and security check those.
"""
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(sys.argv[1])
HOST = socket.gethostname()


def unit_dir():
    for d in ("usr/lib/systemd/system", "lib/systemd/system"):
        if os.path.exists(os.path.join(ROOT, d, "orchard-server.service")):
            return os.path.join(ROOT, d)
    sys.exit("run-units: no units under " + ROOT)


def parse_unit(name, instance=""):
    path = os.path.join(unit_dir(), name)
    env, cmd, workdir, stop = {}, None, None, 90
    spec = lambda v: v.replace("%H", HOST).replace("%i", instance)
    for line in open(path):
        line = line.strip()
        if "=" not in line or line.startswith("#"):
            continue
        key, val = line.split("=", 1)
        if key == "Environment":
            for word in shlex.split(spec(val)):
                k, v = word.split("=", 1)
                env[k] = v
        elif key == "EnvironmentFile":
            f = spec(val).lstrip("-")
            f = os.path.join(ROOT, f.lstrip("/"))
            if os.path.exists(f):
                for fl in open(f):
                    fl = fl.strip()
                    if fl and not fl.startswith("#") and "=" in fl:
                        k, v = fl.split("=", 1)
                        env[k] = " ".join(shlex.split(v))
            elif not val.startswith("-"):
                sys.exit(f"run-units: {name}: {f} missing")
        elif key == "ExecStart":
            cmd = spec(val)
        elif key == "WorkingDirectory":
            workdir = spec(val)
        elif key == "TimeoutStopSec":
            stop = int(val.rstrip("s"))
    argv = []
    for word in shlex.split(cmd):
        m = re.fullmatch(r"\$([A-Za-z_]\w*)", word)
        if m:
            argv += env.get(m.group(1), "").split()
        else:
            argv.append(re.sub(r"\$\{(\w+)\}", lambda x: env.get(x.group(1), ""), word))
    # The package's files (the binary, /etc/orchard/*.json) are under ROOT.
    argv = [os.path.join(ROOT, a.lstrip("/")) if a.startswith(("/usr/bin/", "/etc/orchard/"))
            else a for a in argv]
    return argv, env, workdir, stop


def wait_for(what, cond, timeout, procs=()):
    deadline = time.monotonic() + timeout
    while not cond():
        for unit, p, _, log in procs:
            if p.poll() is not None:
                raise SystemExit(f"run-units: FAIL: {unit} exited {p.returncode} while waiting for "
                                 f"{what}:\n" + open(log).read()[-2000:])
        if time.monotonic() > deadline:
            raise SystemExit(f"run-units: FAIL: timed out waiting for {what}")
        time.sleep(0.05)


def http_status(path):
    try:
        return urllib.request.urlopen("http://127.0.0.1:8080" + path, timeout=2).status
    except Exception:
        return None


def main():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/var/lib"], check=True)
    logs = tempfile.mkdtemp(prefix="orchard-run-units.")
    procs = []
    try:
        def start(unit, instance=""):
            argv, env, workdir, stop = parse_unit(unit, instance)
            if workdir:
                os.makedirs(workdir, exist_ok=True)  # StateDirectory=
            log = os.path.join(logs, unit + ".log")
            full_env = {"PATH": "/usr/bin:/bin", **env}
            print(f"run-units: {unit}: {' '.join(shlex.quote(a) for a in argv)}")
            p = subprocess.Popen(argv, env=full_env, cwd=workdir, stdout=open(log, "w"),
                                 stderr=subprocess.STDOUT)
            procs.append((unit, p, stop, log))
            return log

        slog = start("orchard-server.service")
        wait_for("orchard-server to listen", lambda: "listening on 127.0.0.1:7070" in open(slog).read(), 20,
                 procs)
        for path in ("/healthz", "/readyz"):
            wait_for(f"{path} to answer 200", lambda: http_status(path) == 200, 10)
        if not os.path.exists("/var/lib/orchard/orchard.db"):
            raise SystemExit("run-units: FAIL: the database is not in /var/lib/orchard")
        for unit, inst, name in (("orchard-worker.service", "", HOST),
                                 ("orchard-worker@.service", "a", f"{HOST}-a")):
            wlog = start(unit, inst)
            wait_for(f"{unit} ({inst}) to register", lambda: "registered as" in open(wlog).read(), 20,
                     procs)
            # The server knows it by the unit's name.
            wait_for(f"the server to list worker {name}", lambda: f'"name":"{name}"' in (
                urllib.request.urlopen("http://127.0.0.1:8080/api/v1/workers", timeout=2)
                .read().decode().replace(" ", "")), 10)
        for unit, p, stop, log in reversed(procs):
            t0 = time.monotonic()
            p.terminate()
            try:
                rc = p.wait(timeout=stop)
            except subprocess.TimeoutExpired:
                raise SystemExit(f"run-units: FAIL: {unit} still runs {stop}s after SIGTERM")
            if rc != 0:
                raise SystemExit(f"run-units: FAIL: {unit} exited {rc} on SIGTERM:\n" + open(log).read()[-2000:])
            print(f"run-units: ok: {unit} stopped on SIGTERM in {time.monotonic() - t0:.2f}s, exit 0")
    finally:
        for _, p, _, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", logs])
    print("run-units: the units' command lines start a server and workers that work")


if __name__ == "__main__":
    main()
