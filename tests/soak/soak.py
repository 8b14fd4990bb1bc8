#!/usr/bin/env python3
"""Soak test of `tollgate serve` (run through tests/soak/soak.sh).

Two instances serve HTTPS on two loopback ports, with the certificate mounted the way kubelet
mounts a Secret (tls.crt -> ..data/tls.crt, ..data -> ..<generation>/), and a policies
directory. For SOAK_SECONDS a client sends AdmissionReviews at a steady rate. It fails over to
the other instance when one does not answer, as the API server does between replicas. Meanwhile:

- every SOAK_RELOAD_EVERY seconds the policies flip between a good set (the tracker pack, plus
  a dry-run constraint with a new name each time, so every good flip is a real reload) and a
  broken one (the good set plus a template with a Rego syntax error, which must be rejected);
- every SOAK_ROTATE_EVERY seconds a new certificate generation is written and ..data is swapped
  to it by symlink rename;
- every SOAK_RESTART_EVERY seconds one instance (alternating) gets SIGTERM, must exit 0, and is
  started again on the same ports (0: never, to watch one process's RSS over the whole run).

Every response is checked against the decision expected for its case: allowed or not, and
exactly which constraints deny and warn. Every later answer to a case must also match the first
answer byte for byte (uid aside). The run reports requests sent, failed over, failed and wrong,
the reloads and certificates seen, and each instance's RSS at start and end. It exits 1 on any
wrong answer, any request that failed on both instances, an unclean exit, or when a reload,
rotation or restart did not happen. Standard library only.
"""

import copy
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def env_float(name, default):
    value = os.environ.get(name)
    return float(value) if value else default


SECONDS = env_float("SOAK_SECONDS", 600)
RATE = env_float("SOAK_RATE", 40)  # requests per second, all workers together
WORKERS = int(env_float("SOAK_WORKERS", 4))
RELOAD_EVERY = env_float("SOAK_RELOAD_EVERY", 3)
ROTATE_EVERY = env_float("SOAK_ROTATE_EVERY", max(4.0, min(30.0, SECONDS / 4)))
RESTART_EVERY = env_float("SOAK_RESTART_EVERY", max(6.0, min(60.0, SECONDS / 3)))
BIN = os.environ.get("TOLLGATE_BIN", os.path.join(ROOT, "target", "debug", "tollgate"))


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# === cases ===

REFERENCE_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "logistics-tracker", "namespace": "logistics", "labels": {"app": "logistics-tracker"}},
    "spec": {
        "runtimeClassName": "wasmedge",
        "nodeSelector": {"node-type": "edge"},
        "containers": [{
            "name": "logistics-tracker",
            "image": "registry.example.com/logistics-tracker:latest",
            "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "1000m", "memory": "1Gi"}},
            "ports": [{"containerPort": 8080, "name": "http"}],
        }],
    },
}


def pod_with(change):
    pod = copy.deepcopy(REFERENCE_POD)
    change(pod)
    return pod


def review(obj, namespace="logistics", operation="CREATE", version="v1", uid="soak"):
    kind = obj["kind"]
    group, _, ver = obj["apiVersion"].rpartition("/")
    return {
        "apiVersion": f"admission.k8s.io/{version}",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": ver, "kind": kind},
            "resource": {"group": group, "version": ver, "resource": kind.lower() + "s"},
            "name": obj["metadata"]["name"],
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "soak", "groups": ["system:authenticated"]},
            "object": obj,
        },
    }


def deployment(pod):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "logistics-tracker", "namespace": "logistics"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "logistics-tracker"}},
            "template": {"metadata": {"labels": {"app": "logistics-tracker"}}, "spec": pod["spec"]},
        },
    }


def set_image(image):
    return lambda p: p["spec"]["containers"][0].__setitem__("image", image)


def set_limit(res, value):
    return lambda p: p["spec"]["containers"][0]["resources"]["limits"].__setitem__(res, value)


LATEST = "tracker-image-tag"

# (name, body, expected: (http status, allowed, code, denying constraints, warning constraints));
# an allowed answer with warnings has code 299, as Gatekeeper's webhook sends
CASES = [
    ("reference pod", review(REFERENCE_POD), (200, True, 299, set(), {LATEST})),
    ("pinned tag", review(pod_with(set_image("registry.example.com/logistics-tracker:1.4.2"))),
     (200, True, 200, set(), set())),
    ("runtime class runc", review(pod_with(lambda p: p["spec"].__setitem__("runtimeClassName", "runc"))),
     (200, False, 403, {"tracker-runtime-class"}, {LATEST})),
    ("no node selector", review(pod_with(lambda p: p["spec"].pop("nodeSelector"))),
     (200, False, 403, {"tracker-edge-placement"}, {LATEST})),
    ("cpu limit too high", review(pod_with(set_limit("cpu", "1500m"))),
     (200, False, 403, {"tracker-edge-resources"}, {LATEST})),
    ("invalid quantity", review(pod_with(set_limit("memory", "12xyz"))),
     (200, False, 403, {"tracker-edge-resources"}, {LATEST})),
    ("docker hub image", review(pod_with(set_image("nginx:1.27"))),
     (200, False, 403, {"tracker-allowed-registries"}, set())),
    ("look-alike registry", review(pod_with(set_image("registry.example.com.evil.io/tracker:1"))),
     (200, False, 403, {"tracker-allowed-registries"}, set())),
    ("v1beta1 review", review(REFERENCE_POD, version="v1beta1"), (200, True, 299, set(), {LATEST})),
    ("deployment", review(deployment(REFERENCE_POD)), (200, True, 299, set(), {LATEST})),
    ("deployment of a runc pod",
     review(deployment(pod_with(lambda p: p["spec"].__setitem__("runtimeClassName", "runc")))),
     (200, False, 403, {"tracker-runtime-class"}, {LATEST})),
    ("kube-system is exempt", review(pod_with(set_image("nginx:1.27")), namespace="kube-system"),
     (200, True, 200, set(), set())),
    ("review without request", {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
     (200, False, 400, set(), set())),
    ("body not JSON", "{not json", (400, None, None, set(), set())),
]

NAME = re.compile(r"^\[([^\]]+)\]")


def names(lines):
    out = set()
    for line in lines:
        for part in line.split("\n"):
            m = NAME.match(part)
            if m:
                out.add(m.group(1))
    return out


def judge(case, status, body):
    """None when the answer is the expected one, else what is wrong."""
    _, _, (want_status, want_allowed, want_code, want_deny, want_warn) = case
    if status != want_status:
        return f"HTTP {status}, expected {want_status}: {body[:200]!r}"
    if want_allowed is None:
        return None
    try:
        response = json.loads(body)["response"]
    except (ValueError, KeyError, TypeError) as e:
        return f"not an AdmissionReview ({e}): {body[:200]!r}"
    want_uid = (case[1].get("request") or {}).get("uid", "")
    if response.get("uid") != want_uid:
        return f"uid {response.get('uid')!r}, expected {want_uid!r}"
    if response.get("allowed") is not want_allowed:
        return f"allowed={response.get('allowed')}, expected {want_allowed}: {body[:300]!r}"
    status_obj = response.get("status") or {}
    if status_obj.get("code") != want_code:
        return f"code {status_obj.get('code')}, expected {want_code}: {body[:300]!r}"
    deny = names([status_obj.get("message", "")]) if not want_allowed else set()
    if deny != want_deny:
        return f"denied by {sorted(deny)}, expected {sorted(want_deny)}: {body[:300]!r}"
    warn = names(response.get("warnings") or [])
    if warn != want_warn:
        return f"warnings from {sorted(warn)}, expected {sorted(want_warn)}: {body[:300]!r}"
    return None


# === certificates and policies ===

def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Certificates:
    """A CA and server certificates for localhost, mounted the way kubelet mounts a Secret."""

    def __init__(self, base):
        self.base = base
        self.mount = os.path.join(base, "tls")
        os.makedirs(self.mount)
        self.ca_key = os.path.join(base, "ca.key")
        self.ca_crt = os.path.join(base, "ca.crt")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.ca_key, "-out", self.ca_crt, "-days", "2", "-subj", "/CN=soak-ca")
        self.generation = 0
        self.rotate()
        for name in ("tls.crt", "tls.key"):
            os.symlink(os.path.join("..data", name), os.path.join(self.mount, name))

    def rotate(self):
        self.generation += 1
        gen = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self.generation}"
        d = os.path.join(self.mount, gen)
        os.makedirs(d)
        key, csr, crt = (os.path.join(d, n) for n in ("tls.key", "tls.csr", "tls.crt"))
        ext = os.path.join(d, "ext.cnf")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", f"/CN=tollgate-soak-{self.generation}")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca_crt, "-CAkey", self.ca_key,
                "-CAcreateserial", "-out", crt, "-days", "1", "-extfile", ext)
        os.remove(csr)
        os.remove(ext)
        # kubelet's atomic writer: point a new link at the new generation, rename it over ..data.
        tmp = os.path.join(self.mount, "..data_tmp")
        os.symlink(gen, tmp)
        os.replace(tmp, os.path.join(self.mount, "..data"))
        for old in os.listdir(self.mount):
            if old.startswith("..") and old not in (gen, "..data") and self.generation > 2:
                shutil.rmtree(os.path.join(self.mount, old), ignore_errors=True)


BROKEN_TEMPLATE = """apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8ssoakbroken
spec:
  crd:
    spec:
      names:
        kind: K8sSoakBroken
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8ssoakbroken
        violation[{"msg": msg}] {
          msg := "unterminated
        }
"""


class Policies:
    """The policies directory: the tracker pack, flipped between a good and a broken set."""

    def __init__(self, base):
        self.dir = os.path.join(base, "policies")
        os.makedirs(self.dir)
        constraints = os.path.join(ROOT, "constraints")
        for p in sorted(os.listdir(constraints)):
            for rel, name in (("template.yaml", f"{p}-template.yaml"),
                              ("samples/tracker/constraint.yaml", f"{p}-constraint.yaml")):
                src = os.path.join(constraints, p, rel)
                if os.path.exists(src):
                    shutil.copy(src, os.path.join(self.dir, name))
        shutil.copy(os.path.join(constraints, "k8srequiredruntimeclass/samples/tracker/expansion.yaml"),
                    os.path.join(self.dir, "expansion.yaml"))
        self.flips = 0
        self.broken = False
        self.write_extra()

    def write(self, name, text):
        tmp = os.path.join(self.dir, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(self.dir, name))

    def write_extra(self):
        # A dry-run constraint with a new name: a real change, with no effect on decisions.
        self.write("soak-extra.yaml", f"""apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredRuntimeClass
metadata:
  name: soak-dryrun-{self.flips}
spec:
  enforcementAction: dryrun
  match:
    kinds:
      - apiGroups: [""]
        kinds: ["Pod"]
    namespaces: ["soak-nowhere"]
  parameters:
    runtimeClassNames: ["wasmedge"]
""")

    def flip(self):
        self.flips += 1
        if self.broken:
            os.remove(os.path.join(self.dir, "soak-broken.yaml"))
            self.write_extra()
        else:
            self.write("soak-broken.yaml", BROKEN_TEMPLATE)
        self.broken = not self.broken


# === instances ===

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Instance:
    def __init__(self, name, base, certs, policies):
        self.name = name
        self.port = free_port()
        self.probe_port = free_port()
        self.log_path = os.path.join(base, f"{name}.log")
        self.certs = certs
        self.policies = policies
        self.proc = None
        self.starts = 0
        self.rss_start = None
        self.rss_max = 0
        self.rss_series = []  # (seconds since the soak started, kB), once a minute
        self.bad_exits = []
        self.reloads = {"success": 0, "failure": 0}
        self.tls_reloads = {"success": 0, "failure": 0}

    def start(self):
        args = [BIN, "serve",
                "--listen", f"127.0.0.1:{self.port}",
                "--probe-listen", f"127.0.0.1:{self.probe_port}",
                "--tls-cert", os.path.join(self.certs.mount, "tls.crt"),
                "--tls-key", os.path.join(self.certs.mount, "tls.key"),
                "--policies", self.policies.dir,
                "--exempt-namespace", "kube-system",
                "--reload-interval", "500ms",
                "--shutdown-grace", "5s",
                "--log-format", "json"]
        deadline = time.time() + 60
        while True:
            logf = open(self.log_path, "a")
            self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
            logf.close()
            if self.wait_ready(deadline):
                break
            if self.proc.poll() is None or time.time() > deadline:
                raise RuntimeError(f"{self.name} did not become ready; see {self.log_path}")
            time.sleep(0.2)  # exited early (port still in TIME_WAIT?): try again
        self.starts += 1
        rss = rss_kb(self.proc.pid)
        if self.rss_start is None:
            self.rss_start = rss
        log(f"{self.name} ready (pid {self.proc.pid}, start {self.starts}, RSS {rss} kB)")

    def wait_ready(self, deadline):
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.probe_port, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def metrics(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.probe_port, timeout=2)
            c.request("GET", "/metrics")
            return c.getresponse().read().decode()
        except OSError:
            return ""

    def collect_reloads(self):
        text = self.metrics()
        for family, into in (("tollgate_policy_reloads_total", self.reloads),
                             ("tollgate_tls_reloads_total", self.tls_reloads)):
            for result in into:
                m = re.search(rf'^{family}{{result="{result}"}} (\d+)', text, re.M)
                if m:
                    into[result] += int(m.group(1))

    def sample_rss(self):
        if self.proc and self.proc.poll() is None:
            rss = rss_kb(self.proc.pid) or 0
            self.rss_max = max(self.rss_max, rss)
            return rss
        return None

    def stop(self):
        self.collect_reloads()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = "killed after 20s"
        if code != 0:
            self.bad_exits.append(code)
        log(f"{self.name} stopped by SIGTERM (exit {code})")


# === the client ===

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.ok = self.failed_over = self.failed = self.wrong = 0
        self.examples = []
        self.golden = {}
        self.certs_seen = set()
        self.latencies = []

    def note(self, kind, text):
        with self.lock:
            if len(self.examples) < 20:
                self.examples.append(f"{kind}: {text}")


class Client(threading.Thread):
    def __init__(self, index, instances, certs, stats, stop_at):
        super().__init__(daemon=True)
        self.index = index
        self.instances = instances
        self.stats = stats
        self.stop_at = stop_at
        self.context = ssl.create_default_context(cafile=certs.ca_crt)
        self.conns = {}

    def connection(self, inst):
        c = self.conns.get(inst.name)
        if c is None:
            c = http.client.HTTPSConnection("localhost", inst.port, context=self.context, timeout=10)
            c.connect()
            der = c.sock.getpeercert(binary_form=True)
            with self.stats.lock:
                self.stats.certs_seen.add(hashlib.sha256(der).hexdigest())
            self.conns[inst.name] = c
        return c

    def drop(self, inst):
        c = self.conns.pop(inst.name, None)
        if c is not None:
            c.close()

    def attempt(self, inst, body):
        c = self.connection(inst)
        c.request("POST", "/v1/admit", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read().decode()
        if r.status >= 500:
            raise ConnectionError(f"HTTP {r.status}")
        if r.getheader("connection", "").lower() == "close":
            self.drop(inst)
        return r.status, data

    def run(self):
        interval = WORKERS / RATE
        next_at = time.time() + self.index * interval / WORKERS
        n = self.index
        while True:
            now = time.time()
            if now >= self.stop_at:
                break
            if next_at > now:
                time.sleep(next_at - now)
            next_at += interval
            case = CASES[n % len(CASES)]
            order = [self.instances[n % 2], self.instances[(n + 1) % 2]]
            # A fresh connection now and then sees the certificate currently served.
            if n % 50 == 0:
                self.drop(order[0])
            n += 1
            body = case[1] if isinstance(case[1], str) else json.dumps(case[1])
            answer, errors = None, []
            started = time.time()
            for inst in order:
                try:
                    answer = self.attempt(inst, body)
                    break
                except (OSError, http.client.HTTPException, ssl.SSLError) as e:
                    errors.append(f"{inst.name}: {type(e).__name__}: {e}")
                    self.drop(inst)
            with self.stats.lock:
                self.stats.sent += 1
                if answer is None:
                    self.stats.failed += 1
                elif errors:
                    self.stats.failed_over += 1
                self.stats.latencies.append(time.time() - started)
            if answer is None:
                self.stats.note("failed", f"{case[0]}: {errors}")
                continue
            status, data = answer
            wrong = judge(case, status, data)
            with self.stats.lock:
                golden = self.stats.golden.setdefault(case[0], (status, data))
            if wrong is None and (status, data) != golden:
                wrong = f"differs from the first answer {golden}: {(status, data)}"
            with self.stats.lock:
                if wrong is None:
                    self.stats.ok += 1
                else:
                    self.stats.wrong += 1
            if wrong is not None:
                self.stats.note("wrong", f"{case[0]}: {wrong}")


def main():
    if not os.path.exists(BIN):
        sys.exit(f"no tollgate binary at {BIN} (build it: cargo build -p tollgate)")
    base = tempfile.mkdtemp(prefix="tollgate-soak-")
    log(f"SOAK_SECONDS={SECONDS:g} rate={RATE:g}/s reload every {RELOAD_EVERY:g}s, rotate every "
        f"{ROTATE_EVERY:g}s, restart every {RESTART_EVERY:g}s; work dir {base}")
    certs = Certificates(base)
    policies = Policies(base)
    instances = [Instance("a", base, certs, policies), Instance("b", base, certs, policies)]
    for inst in instances:
        inst.start()
    stats = Stats()
    start = time.time()
    stop_at = start + SECONDS
    clients = [Client(i, instances, certs, stats, stop_at) for i in range(WORKERS)]
    for c in clients:
        c.start()
    rotations = restarts = 0
    next_reload, next_rotate, next_restart = start + RELOAD_EVERY, start + ROTATE_EVERY, start + RESTART_EVERY
    next_sample = start
    next_series = start
    try:
        while time.time() < stop_at:
            now = time.time()
            if now >= next_reload:
                policies.flip()
                next_reload += RELOAD_EVERY
            if now >= next_rotate:
                certs.rotate()
                rotations += 1
                log(f"certificate rotated (generation {certs.generation})")
                next_rotate += ROTATE_EVERY
            if RESTART_EVERY > 0 and now >= next_restart and stop_at - now > 3:
                inst = instances[restarts % 2]
                inst.stop()
                inst.start()
                restarts += 1
                next_restart = time.time() + RESTART_EVERY
            if now >= next_sample:
                for inst in instances:
                    rss = inst.sample_rss()
                    if now >= next_series and rss is not None:
                        inst.rss_series.append((round(now - start), rss))
                if now >= next_series:
                    next_series += 60
                next_sample += 5
            time.sleep(0.05)
        for c in clients:
            c.join(timeout=30)
        rss_end = {inst.name: inst.sample_rss() for inst in instances}
    finally:
        for inst in instances:
            if inst.proc and inst.proc.poll() is None:
                inst.stop()

    lat = sorted(stats.latencies) or [0]
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    print()
    print(f"soak: {SECONDS:g}s, {stats.sent} requests sent ({stats.sent / SECONDS:.1f}/s), "
          f"{stats.ok} right, {stats.wrong} wrong, {stats.failed} failed on both instances, "
          f"{stats.failed_over} answered after failing over")
    print(f"latency: p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms")
    print(f"policy flips: {policies.flips}; certificate rotations: {rotations} "
          f"({len(stats.certs_seen)} distinct certificates seen by the client); restarts: {restarts}")
    for inst in instances:
        print(f"instance {inst.name}: {inst.starts} starts, policy reloads {inst.reloads}, "
              f"certificate reloads {inst.tls_reloads}, RSS start {inst.rss_start} kB, "
              f"end {rss_end.get(inst.name)} kB, max {inst.rss_max} kB, unclean exits {inst.bad_exits}")
        if len(inst.rss_series) > 2:
            print(f"  RSS by minute (s: kB): " + ", ".join(f"{t}: {kb}" for t, kb in inst.rss_series))
    for e in stats.examples:
        print("  " + e)
    problems = []
    if stats.wrong:
        problems.append(f"{stats.wrong} wrong answers")
    if stats.failed:
        problems.append(f"{stats.failed} requests failed on both instances")
    if stats.sent == 0:
        problems.append("no requests sent")
    for inst in instances:
        if inst.bad_exits:
            problems.append(f"instance {inst.name} exited uncleanly: {inst.bad_exits}")
        if inst.reloads["failure"] == 0 and policies.flips >= 4:
            problems.append(f"instance {inst.name} never rejected a broken policy set")
        if inst.reloads["success"] == 0 and policies.flips >= 4:
            problems.append(f"instance {inst.name} never reloaded a good policy set")
    if rotations and len(stats.certs_seen) < 2:
        problems.append("the rotated certificate was never served")
    if problems:
        print("SOAK FAILED: " + "; ".join(problems))
        print(f"logs: {base}")
        return 1
    shutil.rmtree(base, ignore_errors=True)
    print("SOAK PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
