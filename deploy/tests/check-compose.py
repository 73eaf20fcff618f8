#!/usr/bin/python3
"""Validates deploy/compose.yaml:  check-compose.py COMPOSE_FILE

`docker-compose config` (Debian's docker-compose, offline: it only parses and
validates against the Compose schema) must accept the file; then, on what it
prints, the things Orchard relies on:
  - every service runs a binary of the package (/usr/bin/orchard-*) as a
    non-root user, read-only root filesystem, all capabilities dropped;
  - the server keeps its database on a named volume (--db under its mount),
    publishes ports on 127.0.0.1 only, and has a healthcheck on its --http
    port's /healthz or /readyz;
  - every worker names a server service and its gRPC port, waits for the
    server to be healthy, and has a stop_grace_period over its 30 s drain.
Exit 0 when all hold, 1 otherwise.
"""
import os
import re
import subprocess
import sys

import yaml



def worker_drain_s():
    """The worker's SIGTERM drain, from worker/daemon.h."""
    h = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../worker/daemon.h")
    m = re.search(r"drain_timeout_ms\s*=\s*([0-9']+)", open(h).read())
    return int(m.group(1).replace("'", "")) // 1000


WORKER_DRAIN_S = worker_drain_s()


def seconds(v):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(v))
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0) if m else 0


def main():
    path = sys.argv[1]
    r = subprocess.run(["docker-compose", "-f", path, "config"], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"check-compose: FAIL: docker-compose config: {r.stdout}{r.stderr}")
        return 1
    doc = yaml.safe_load(r.stdout)
    services = doc.get("services", {})
    errors = []

    def err(s, m):
        errors.append(f"{s}: {m}")

    servers = {}
    for name, s in services.items():
        cmd = s.get("command") or []
        if not cmd or not re.fullmatch(r"/usr/bin/orchard-(server|worker)", cmd[0]):
            err(name, f"command {cmd[:1]} is not an Orchard daemon")
            continue
        if str(s.get("user", "0")).split(":")[0] in ("0", "root", ""):
            err(name, "runs as root")
        if s.get("read_only") is not True:
            err(name, "root filesystem is writable")
        if "ALL" not in (s.get("cap_drop") or []):
            err(name, "capabilities not all dropped")
        if cmd[0].endswith("server"):
            servers[name] = s
    workers = {n: s for n, s in services.items()
               if (s.get("command") or [""])[0].endswith("orchard-worker")}
    if not servers or len(workers) < 2:
        err("services", f"want a server and workers, got {sorted(services)}")
    volumes = doc.get("volumes") or {}
    for name, s in servers.items():
        args = dict(a[2:].split("=", 1) for a in s["command"][1:] if a.startswith("--") and "=" in a)
        # docker-compose 1.29 prints the short forms: SOURCE:TARGET[:MODE] and
        # HOST_IP:HOST_PORT:PORT[/PROTO].
        mounts = [v.split(":")[:2] for v in s.get("volumes", []) if isinstance(v, str)]
        db = args.get("db", "")
        if not any(src in volumes and db.startswith(dst.rstrip("/") + "/") for src, dst in mounts):
            err(name, f"--db {db!r} is not on a named volume")
        for p in s.get("ports", []):
            if not str(p).startswith("127.0.0.1:"):
                err(name, f"port {p} published beyond 127.0.0.1")
        http_port = args.get("http", "").rsplit(":", 1)[-1]
        test = " ".join(s.get("healthcheck", {}).get("test") or [])
        if not re.search(rf"/dev/tcp/127\.0\.0\.1/{http_port}\b", test) or not re.search(
                r"GET /(healthz|readyz) ", test):
            err(name, f"no healthcheck on /healthz or /readyz of port {http_port}: {test!r}")
        s["_grpc_port"] = args.get("listen", "").rsplit(":", 1)[-1]
    for name, s in workers.items():
        args = dict(a[2:].split("=", 1) for a in s["command"][1:] if a.startswith("--") and "=" in a)
        host, _, port = args.get("server", "").rpartition(":")
        if host not in servers or port != servers[host].get("_grpc_port"):
            err(name, f"--server {args.get('server')!r} is not a server service's gRPC port")
        elif (s.get("depends_on") or {}).get(host, {}).get("condition") != "service_healthy":
            err(name, f"does not wait for {host} to be healthy")
        if seconds(s.get("stop_grace_period", "10s")) <= WORKER_DRAIN_S:
            err(name, f"stop_grace_period {s.get('stop_grace_period')} does not cover the drain")
    for e in errors:
        print("check-compose: FAIL:", e)
    if not errors:
        print(f"check-compose: ok: {len(servers)} server, {len(workers)} workers")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
