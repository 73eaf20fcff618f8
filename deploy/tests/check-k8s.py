#!/usr/bin/python3
"""Renders Orchard's Kubernetes manifests and checks them offline.

    check-k8s.py [--kubectl KUBECTL] DIR:sqlite|postgres ...

For each kustomization DIR, runs `KUBECTL kustomize DIR` and checks what a
cluster would refuse or what would break Orchard at run time, with no cluster:
  - every object: a known apiVersion for its kind (as served by Kubernetes
    1.25+), a DNS-1123 name, the namespace orchard (namespaced kinds);
  - workloads: selector matches the pod labels; every container has an
    image, requests and limits, runs non-root with a read-only root
    filesystem, no privilege escalation, all capabilities dropped; every
    $(VAR) in args is defined in env; every ConfigMap/Secret referenced by
    env or volumes exists with that key; every volumeMount has a volume;
  - the server: readiness on /readyz and liveness on /healthz, on a port the
    container declares, which is also the one Prometheus' annotations scrape;
    SQLite: a single-replica StatefulSet with a PVC for /var/lib/orchard;
    PostgreSQL: a Deployment with at least 2 replicas and no StatefulSet;
  - the workers: terminationGracePeriodSeconds longer than the 30 s drain;
  - Services and PodDisruptionBudgets select pods of some workload, and a
    Service's named targetPorts exist on them.
Uses PyYAML (Debian python3-yaml). Exit 0 when all hold, 1 otherwise.
"""
import argparse
import os
import re
import subprocess
import sys

import yaml

API = {  # kind -> apiVersion served by current Kubernetes
    "Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
    "Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
}
CLUSTER_SCOPED = {"Namespace"}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def worker_drain_s():
    """The worker's SIGTERM drain, from worker/daemon.h, so a change there
    makes this check ask for a longer grace."""
    h = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../worker/daemon.h")
    m = re.search(r"drain_timeout_ms\s*=\s*([0-9']+)", open(h).read())
    return int(m.group(1).replace("'", "")) // 1000


WORKER_DRAIN_S = worker_drain_s()

errors = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def check_object(o, where):
    kind = o.get("kind")
    if kind not in API:
        err(where, f"unexpected kind {kind!r}")
        return
    if o.get("apiVersion") != API[kind]:
        err(where, f"apiVersion {o.get('apiVersion')!r}, want {API[kind]!r}")
    md = o.get("metadata") or {}
    name = md.get("name", "")
    if not DNS1123.match(name) or len(name) > 63:
        err(where, f"name {name!r} is not a DNS-1123 label")
    if kind not in CLUSTER_SCOPED and md.get("namespace") != "orchard":
        err(where, f"namespace {md.get('namespace')!r}, want 'orchard'")


def check_workload(w, where, configmaps, secrets):
    spec = w["spec"]
    sel = spec.get("selector", {}).get("matchLabels") or {}
    labels = spec["template"]["metadata"].get("labels") or {}
    if not sel or any(labels.get(k) != v for k, v in sel.items()):
        err(where, f"selector {sel} does not match the pod labels {labels}")
    ps = pod_spec(w)
    psc = ps.get("securityContext") or {}
    volumes = {v["name"]: v for v in ps.get("volumes", [])}
    claim_names = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    for v in volumes.values():
        if "configMap" in v and v["configMap"]["name"] not in configmaps:
            err(where, f"volume {v['name']}: no ConfigMap {v['configMap']['name']}")
        if "secret" in v and v["secret"]["secretName"] not in secrets:
            err(where, f"volume {v['name']}: no Secret {v['secret']['secretName']}")
    for c in ps.get("containers", []):
        cw = f"{where} container {c.get('name')}"
        if not c.get("image"):
            err(cw, "no image")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(part) or {}):
                    err(cw, f"no resources.{part}.{r}")
        sc = c.get("securityContext") or {}
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            err(cw, "may run as root (runAsNonRoot)")
        if sc.get("readOnlyRootFilesystem") is not True:
            err(cw, "root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            err(cw, "allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            err(cw, "capabilities not all dropped")
        env = {e["name"]: e for e in c.get("env", [])}
        for a in c.get("args", []) + c.get("command", []):
            for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
                if var not in env:
                    err(cw, f"args use $({var}), which env does not define")
        for e in env.values():
            src = e.get("valueFrom") or {}
            if "configMapKeyRef" in src:
                r = src["configMapKeyRef"]
                if r["key"] not in configmaps.get(r["name"], {}):
                    err(cw, f"env {e['name']}: ConfigMap {r['name']} has no key {r['key']}")
            if "secretKeyRef" in src:
                r = src["secretKeyRef"]
                if r["key"] not in secrets.get(r["name"], {}):
                    err(cw, f"env {e['name']}: Secret {r['name']} has no key {r['key']}")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes and m["name"] not in claim_names:
                err(cw, f"volumeMount {m['name']} has no volume")
            v = volumes.get(m["name"], {})
            if "subPath" in m and "configMap" in v:
                if m["subPath"] not in configmaps.get(v["configMap"]["name"], {}):
                    err(cw, f"volumeMount {m['name']}: no key {m['subPath']}")


def port_number(c, port):
    for p in c.get("ports", []):
        if port in (p.get("name"), p.get("containerPort")):
            return p["containerPort"]
    return None


def check_server(w, where, store):
    kind = w["kind"]
    replicas = w["spec"].get("replicas", 1)
    if store == "sqlite":
        if kind != "StatefulSet" or replicas != 1:
            err(where, f"SQLite has one writer: want a 1-replica StatefulSet, got {kind} x{replicas}")
        claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        c = pod_spec(w)["containers"][0]
        db_mounts = [m for m in c.get("volumeMounts", [])
                     if m["mountPath"] == "/var/lib/orchard" and m["name"] in claims]
        if not db_mounts:
            err(where, "the database directory /var/lib/orchard is not on a PersistentVolumeClaim")
        if not any(a.startswith("--db=/var/lib/orchard/") for a in c.get("args", [])):
            err(where, "--db is not under /var/lib/orchard")
    else:
        if kind != "Deployment" or replicas < 2:
            err(where, f"PostgreSQL: want a Deployment of >= 2 replicas, got {kind} x{replicas}")
    c = pod_spec(w)["containers"][0]
    http = None
    for a in c.get("args", []):
        if a.startswith("--http="):
            http = int(a.rsplit(":", 1)[1])
    if http is None:
        err(where, "the server has no --http listener (probes and metrics need it)")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        g = (c.get(probe) or {}).get("httpGet") or {}
        if g.get("path") != path:
            err(where, f"{probe} is not an HTTP GET of {path}")
        elif port_number(c, g.get("port")) != http:
            err(where, f"{probe} port {g.get('port')!r} is not the --http port {http}")
    ann = w["spec"]["template"]["metadata"].get("annotations") or {}
    if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/path") != "/metrics" \
            or str(ann.get("prometheus.io/port")) != str(http):
        err(where, f"Prometheus annotations {ann} do not scrape /metrics on {http}")


def check_worker(w, where):
    grace = pod_spec(w).get("terminationGracePeriodSeconds", 30)
    if grace <= WORKER_DRAIN_S:
        err(where, f"terminationGracePeriodSeconds {grace} does not cover the {WORKER_DRAIN_S} s drain")


def check_render(docs, store, label):
    by_kind = {}
    for i, o in enumerate(docs):
        where = f"{label}: {o.get('kind')}/{(o.get('metadata') or {}).get('name')}"
        check_object(o, where)
        by_kind.setdefault(o.get("kind"), []).append(o)
    configmaps = {o["metadata"]["name"]: o.get("data") or {} for o in by_kind.get("ConfigMap", [])}
    secrets = {o["metadata"]["name"]: {**(o.get("data") or {}), **(o.get("stringData") or {})}
               for o in by_kind.get("Secret", [])}
    workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", []) + \
        by_kind.get("DaemonSet", [])
    names = {w["metadata"]["name"]: w for w in workloads}
    for w in workloads:
        check_workload(w, f"{label}: {w['kind']}/{w['metadata']['name']}", configmaps, secrets)
    for need in ("orchard-server", "orchard-worker"):
        if need not in names:
            err(label, f"no workload {need}")
    if "orchard-server" in names:
        check_server(names["orchard-server"], f"{label}: orchard-server", store)
    if "orchard-worker" in names:
        check_worker(names["orchard-worker"], f"{label}: orchard-worker")
    if store == "postgres" and by_kind.get("StatefulSet"):
        err(label, "a StatefulSet remains in the PostgreSQL overlay")
    for kind in ("Service", "PodDisruptionBudget"):
        for s in by_kind.get(kind, []):
            where = f"{label}: {kind}/{s['metadata']['name']}"
            sel = s["spec"].get("selector") or {}
            if kind == "PodDisruptionBudget":
                sel = sel.get("matchLabels") or {}
            hits = [w for w in workloads
                    if sel and all((w["spec"]["template"]["metadata"].get("labels") or {}).get(k) == v
                                   for k, v in sel.items())]
            if not hits:
                err(where, f"selector {sel} selects no pods")
                continue
            if kind == "Service":
                for p in s["spec"].get("ports", []):
                    tp = p.get("targetPort", p["port"])
                    for w in hits:
                        if not any(port_number(c, tp) for c in pod_spec(w)["containers"]):
                            err(where, f"targetPort {tp!r} is not a port of {w['metadata']['name']}")
    if store == "postgres" and not any(
            p["metadata"]["name"] == "orchard-server" for p in by_kind.get("PodDisruptionBudget", [])):
        err(label, "no PodDisruptionBudget for the servers")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl", default="kubectl")
    ap.add_argument("dirs", nargs="+", help="DIR:sqlite or DIR:postgres")
    args = ap.parse_args()
    for spec in args.dirs:
        d, store = spec.rsplit(":", 1)
        r = subprocess.run([args.kubectl, "kustomize", d], capture_output=True, text=True)
        if r.returncode != 0:
            err(d, f"kubectl kustomize failed: {r.stderr.strip()}")
            continue
        docs = [x for x in yaml.safe_load_all(r.stdout) if x]
        kinds = sorted(o["kind"] for o in docs)
        print(f"check-k8s: {d} rendered {len(docs)} objects: {', '.join(kinds)}")
        check_render(docs, store, d)
    for e in errors:
        print("check-k8s: FAIL:", e)
    if not errors:
        print("check-k8s: all checks passed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
