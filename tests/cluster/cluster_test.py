#!/usr/bin/python3
"""A four-machine Orchard cluster in Linux network namespaces (label `cluster`).

    cluster_test.py --bin BUILD_DIR [--keep]

This test verifies that a task stays exact across the partitions a real
cluster sees, with the real binaries on four simulated machines:

  node 1  orchard-server  10.213.0.1   (gRPC 7070, HTTP 8080, non-loopback)
  node 2  orchard-worker  10.213.0.2
  node 3  orchard-worker  10.213.0.3
  node 4  orchardctl      10.213.0.4

Each node is a network namespace with one veth to a bridge in a fifth
namespace (the switch), so nothing touches the host's network and every
address is inside namespaces this test made. Two `flaky` sums over
[0, 1000000) in 200 subtasks each (each slice slowed to FLAKY_MS) run while
the test
  1. task A: cuts node 3's cable at the switch (`ip link set ... down`) while
     node 3 runs subtasks: node 3's worker must fence itself (its log says
     "self-fencing") before the server expires its leases, and node 2 alone
     must finish A, the slices node 3 lost included (the server hands a
     retried slice out after the fresh ones, so node 3 stays out until A
     ends);
  2. task B: plugs node 3 back: its worker must finish subtasks of B;
  3. cuts node 1 (the server) from everyone for 1.5 lease TTLs while B runs:
     both workers must fence themselves, then work must resume;
and checks that each task's result is exactly 499999500000 with exactly one
Succeeded transition per subtask, then stops the daemons (SIGTERM) and runs
orchard-check (the invariant checker: legal histories, one committed result
per subtask, each task's result the reduce of its subtasks) on the database.

No TLS or tokens: the security issue has not landed, and orchard-server
serves any address in plaintext. Every wait is on a condition with a
deadline. Needs root (ip netns); without it, exits 77, which ctest reports as
skipped. Namespaces and processes are removed on every exit path.
"""
import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
LEASE_TTL_S = 3
FLAKY_MS = 150          # per slice: 200 x 150 ms / 2 slots ~ 15 s on one node
SLOTS = 2
EXPECTED_SUM = 499999500000
SUBNET = "10.213.0"


def log(msg):
    print(f"cluster: {time.strftime('%H:%M:%S')} {msg}", flush=True)


class Fail(Exception):
    pass


def run(*cmd, check=True, **kw):
    r = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise Fail(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
    return r


def wait_for(what, cond, timeout, interval=0.05):
    """Polls cond() until it returns a true value; Fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def parse_time(s):
    # spdlog json: "2026-11-25T07:30:53.852Z" (UTC)
    return datetime.datetime.strptime(s.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def read_log(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    j = json.loads(line)
                except ValueError:
                    continue  # a line being written
                j["_t"] = parse_time(j["time"])
                out.append(j)
    except FileNotFoundError:
        pass
    return out


class Cluster:
    def __init__(self, bindir, workdir):
        self.bin = bindir
        self.dir = workdir
        tag = f"{os.getpid() % 100000}"
        self.ns = {n: f"orc{tag}-n{n}" for n in (1, 2, 3, 4)}
        self.switch = f"orc{tag}-sw"
        self.procs = []

    # ------------------------------------------------------------ network
    def build_network(self):
        run("ip", "netns", "add", self.switch)
        run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.switch, "link", "set", "br0", "up")
        for n, ns in self.ns.items():
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
            # The pair is made inside the node, its switch end moved over.
            run("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"port{n}")
            run("ip", "-n", ns, "link", "set", f"port{n}", "netns", self.switch)
            run("ip", "-n", ns, "addr", "add", f"{SUBNET}.{n}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", self.switch, "link", "set", f"port{n}", "master", "br0")
            run("ip", "-n", self.switch, "link", "set", f"port{n}", "up")

    def cable(self, n, up):
        """Plugs or unplugs node n's cable at the switch."""
        run("ip", "-n", self.switch, "link", "set", f"port{n}", "up" if up else "down")
        log(f"node {n}'s link {'up' if up else 'DOWN'}")

    def teardown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for ns in list(self.ns.values()) + [self.switch]:
            # Whatever still runs in our namespaces is ours.
            r = run("ip", "netns", "pids", ns, check=False)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run("ip", "netns", "del", ns, check=False)

    # ---------------------------------------------------------- processes
    def start(self, n, name, *argv):
        logf = open(os.path.join(self.dir, f"{name}.log"), "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[n], *argv],
                             stdout=logf, stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs.append(p)
        return p

    def ctl(self, *args, timeout=30):
        return run("ip", "netns", "exec", self.ns[4], os.path.join(self.bin, "cli/orchardctl"),
                   "--server", f"{SUBNET}.1:7070", *args, timeout=timeout)

    def server_log(self):
        return read_log(os.path.join(self.dir, "server.log"))

    def worker_log(self, n):
        return read_log(os.path.join(self.dir, f"worker-{n}.log"))


def worker_ids(lines):
    return {l["msg"].split()[2] for l in lines if l["msg"].startswith("registered as ")}


def subtask_events(server_lines, task):
    return [l for l in server_lines if l.get("task") == task and "subtask" in l
            and l["msg"].startswith("subtask ")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the build directory")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("cluster: SKIPPED: needs root to create network namespaces (ip netns)")
        return SKIP
    if run("ip", "netns", "list", check=False).returncode != 0:
        print("cluster: SKIPPED: `ip netns` does not work here")
        return SKIP
    bindir = os.path.abspath(args.bin)
    workdir = tempfile.mkdtemp(prefix="orchard-cluster.")
    cluster = Cluster(bindir, workdir)
    # ctest's timeout sends SIGTERM: clean up on it as on any exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ok = False
    t_start = time.monotonic()
    try:
        cluster.build_network()
        log(f"network up: nodes {list(cluster.ns.values())}, switch {cluster.switch}; logs in {workdir}")
        db = os.path.join(workdir, "orchard.db")
        cluster.start(1, "server", os.path.join(bindir, "server/orchard-server"),
                      "--listen", f"{SUBNET}.1:7070", "--http", f"{SUBNET}.1:8080", "--db", db,
                      "--lease-ttl", f"{LEASE_TTL_S}s", "--log-format", "json")
        wait_for("the server to listen", lambda: any(
            l["msg"].startswith("listening on") for l in cluster.server_log()), 20)
        for n in (2, 3):
            cluster.start(n, f"worker-{n}", os.path.join(bindir, "worker/orchard-worker"),
                          "--server", f"{SUBNET}.1:7070", "--slots", str(SLOTS),
                          "--name", f"node-{n}", "--log-format", "json")
        for n in (2, 3):
            wait_for(f"worker on node {n} to register", lambda: worker_ids(cluster.worker_log(n)), 20)
        w2 = worker_ids(cluster.worker_log(2))
        log(f"workers registered: node 2 {w2}, node 3 {worker_ids(cluster.worker_log(3))}")

        def submit():
            r = cluster.ctl("submit", "--kind", "flaky", "--range", "0:1000000", "--subtasks", "200",
                            "--params", json.dumps({"ms": FLAKY_MS}), "--max-attempts", "10")
            log(f"submitted {r.stdout.strip()} from node 4")
            return r.stdout.strip()

        def events(task, event, ids=None, since=0.0):
            return [l for l in subtask_events(cluster.server_log(), task) if l["event"] == event
                    and (ids is None or l["worker"] in ids) and l["_t"] >= since]

        def held_by(task, ids):
            """Subtasks of task whose last transition leased them to one of ids."""
            held = {}
            for l in subtask_events(cluster.server_log(), task):
                held[l["subtask"]] = l["worker"] if l["event"] == "Leased" else None
            return [s for s, w in held.items() if w in ids]

        def finish_exact(task):
            w = cluster.ctl("watch", task, timeout=120)
            if w.returncode != 0:
                raise Fail(f"orchardctl watch {task} exited {w.returncode}: {w.stdout[-300:]} {w.stderr[-300:]}")
            final = json.loads(cluster.ctl("get", task, "-o", "json").stdout)
            got = (final.get("result") or {}).get("sum")
            log(f"{task} {final['state']}/{final['outcome']}, sum {got}")
            if final["outcome"] != "SUCCEEDED" or got != EXPECTED_SUM:
                raise Fail(f"{task}: want SUCCEEDED with sum {EXPECTED_SUM}, got {final['outcome']} {got}")
            done = events(task, "Succeeded")
            if len(done) != 200 or len({l["subtask"] for l in done}) != 200:
                raise Fail(f"{task}: {len(done)} Succeeded transitions for 200 subtasks")
            return done

        # --- 1. Task A: node 3 is cut off while it runs subtasks.
        a = submit()
        w3 = worker_ids(cluster.worker_log(3))
        wait_for("node 3 to run subtasks of A", lambda: held_by(a, w3) and events(a, "Succeeded", w3), 30)
        if len(events(a, "Succeeded")) > 100:
            raise Fail("task A is half done before the cut; raise FLAKY_MS")
        cut_at = time.time()
        cluster.cable(3, up=False)
        fence = wait_for("node 3's worker to fence itself", lambda: [
            l for l in cluster.worker_log(3) if "self-fencing" in l["msg"] and l["_t"] >= cut_at],
            LEASE_TTL_S * 4)[0]
        log(f"node 3 fenced itself {fence['_t'] - cut_at:.2f}s after the cut: {fence['msg']}")
        expired = wait_for("the server to expire node 3's leases",
                           lambda: events(a, "LeaseExpired", since=cut_at), LEASE_TTL_S * 4)
        first_expiry = min(l["_t"] for l in expired)
        log(f"the server expired {len(expired)} leases, the first {first_expiry - cut_at:.2f}s after the cut")
        if fence["_t"] >= first_expiry:
            raise Fail(f"node 3 fenced at {fence['_t']:.3f}, not before the server expired its lease at {first_expiry:.3f}")
        # Node 2 alone finishes A, the slices node 3 lost included.
        done_a = finish_exact(a)
        lost = {l["subtask"] for l in expired}
        w2 = worker_ids(cluster.worker_log(2))
        by_2 = {l["subtask"] for l in done_a if l["worker"] in w2}
        if not lost <= by_2:
            raise Fail(f"node 2 did not finish the slices node 3 lost: {sorted(lost - by_2)}")
        late = [l for l in cluster.server_log() if l.get("task") == a and l.get("worker") in w3
                and l["_t"] > first_expiry and l.get("event") == "Succeeded"]
        if late:
            raise Fail(f"a result of fenced node 3 was counted after its lease expired: {late[0]}")
        log(f"node 2 finished A: {len(by_2)} subtasks, the {len(lost)} that node 3 lost included")

        # --- 2. Node 3 comes back and works on task B.
        def node3_alive():
            r = cluster.ctl("workers", "-o", "json")
            ws = json.loads(r.stdout)
            ws = ws.get("workers", []) if isinstance(ws, dict) else ws
            ids = worker_ids(cluster.worker_log(3))
            return any(w["id"] in ids and w["alive"] for w in ws)
        if node3_alive():
            raise Fail("the server still counts node 3's worker alive while its link is down")
        back_at = time.time()
        cluster.cable(3, up=True)
        # B starts once node 3 heartbeats again (gRPC's reconnect backoff
        # after a long cut can take seconds), so node 3 surely gets slices.
        wait_for("node 3's worker to be alive again", node3_alive, 30, interval=0.2)
        log(f"node 3's worker alive again {time.time() - back_at:.2f}s after the link came back")
        b = submit()
        rejoined = wait_for("node 3's worker to finish subtasks of B", lambda: events(
            b, "Succeeded", worker_ids(cluster.worker_log(3)), back_at), 30)
        log(f"node 3 rejoined: its first subtask of B done {rejoined[0]['_t'] - back_at:.2f}s after"
            f" the link came back (worker ids {sorted(worker_ids(cluster.worker_log(3)))})")

        # --- 3. The server's node is cut off for longer than the lease TTL.
        if len(events(b, "Succeeded")) > 120:
            raise Fail("task B is mostly done before the server cut; raise FLAKY_MS")
        srv_cut = time.time()
        cluster.cable(1, up=False)
        for n in (2, 3):
            wait_for(f"node {n}'s worker to fence itself", lambda: [
                l for l in cluster.worker_log(n) if l["_t"] >= srv_cut and "self-fencing" in l["msg"]],
                LEASE_TTL_S * 4)
        # Out for longer than the TTL, so the server expires the leases it gave.
        wait_for("1.5 lease TTLs to pass", lambda: time.time() - srv_cut > LEASE_TTL_S * 1.5,
                 LEASE_TTL_S * 3)
        srv_back = time.time()
        cluster.cable(1, up=True)
        log(f"server was out {srv_back - srv_cut:.1f}s; both workers fenced themselves")
        ids_all = worker_ids(cluster.worker_log(2)) | worker_ids(cluster.worker_log(3))
        again = wait_for("a worker to finish a subtask of B after the server came back",
                         lambda: events(b, "Succeeded", ids_all, srv_back), 30)
        log(f"work resumed {again[0]['_t'] - srv_back:.2f}s after the server's link came back")
        done_b = finish_exact(b)
        by_node = {n: len([l for l in done_b if l["worker"] in worker_ids(cluster.worker_log(n))])
                   for n in (2, 3)}
        log(f"B: subtasks done by node 2: {by_node[2]}, node 3: {by_node[3]}; "
            f"lease expiries: {len(events(b, 'LeaseExpired'))}")

        # Stop the daemons (SIGTERM: the worker drains, the server closes),
        # then check the database's invariants.
        for p in cluster.procs:
            p.send_signal(signal.SIGTERM)
        for p in cluster.procs:
            p.wait(timeout=40)
        chk = run(os.path.join(bindir, "server/orchard-check"), "--db", db, check=False)
        if chk.returncode != 0:
            raise Fail(f"orchard-check exited {chk.returncode}:\n{chk.stdout}{chk.stderr}")
        log(f"orchard-check: {chk.stdout.strip().splitlines()[-1] if chk.stdout.strip() else 'ok'}")
        ok = True
    except Fail as e:
        log(f"FAIL: {e}")
    finally:
        cluster.teardown()
        if ok and not args.keep:
            subprocess.run(["rm", "-rf", workdir])
        else:
            log(f"logs and database kept in {workdir}")
    log(f"{'passed' if ok else 'FAILED'} in {time.monotonic() - t_start:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
