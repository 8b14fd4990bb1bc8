#!/usr/bin/env python3
"""Regenerates the committed seed corpus (fuzz/corpus/<target>/) from the tracker pack's
samples, templates, suites and Rego. Run from anywhere: python3 fuzz/seeds/make_corpus.py.
Seeds are named by content hash, as libFuzzer names its own, so reruns do not duplicate them."""
import copy, glob, hashlib, json, os, sys

import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def review(obj, version="v1", operation="CREATE", namespace=None, user="alice", old=None, uid="u-1"):
    kind = obj.get("kind", "Pod")
    group, _, ver = obj.get("apiVersion", "v1").rpartition("/")
    req = {
        "uid": uid,
        "kind": {"group": group, "version": ver, "kind": kind},
        "resource": {"group": group, "version": ver, "resource": kind.lower() + "s"},
        "name": obj.get("metadata", {}).get("name", ""),
        "namespace": namespace or obj.get("metadata", {}).get("namespace", "default"),
        "operation": operation,
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "object": obj,
        "dryRun": False,
    }
    if old is not None:
        req["oldObject"] = old
    return json.dumps({"apiVersion": "admission.k8s.io/" + version, "kind": "AdmissionReview", "request": req})


def main():
    samples = sorted(glob.glob(os.path.join(ROOT, "constraints/*/samples/tracker/example_*.yaml")))
    objects = []
    for path in samples:
        with open(path) as f:
            objects.extend(d for d in yaml.safe_load_all(f) if d)
    seen = set()
    pods = []
    for obj in objects:
        key = json.dumps(obj, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        put("admission_review", review(obj))
        if obj.get("kind") == "Pod":
            pods.append(obj)
    pod = pods[0]
    put("admission_review", review(pod, version="v1beta1"))
    put("admission_review", review(pod, namespace="kube-system"))
    put("admission_review", review(pod, user="system:serviceaccount:tollgate-system:tollgate"))
    put("admission_review", review(pod, operation="UPDATE", old=pod))
    delete = json.loads(review(pod, operation="DELETE", old=pod))
    del delete["request"]["object"]
    put("admission_review", json.dumps(delete))
    weird = copy.deepcopy(pod)
    weird["spec"]["containers"][0]["resources"]["limits"]["cpu"] = 1.5
    weird["spec"]["containers"][0]["image"] = "registry.example.com.evil.io/x@sha256:" + "0" * 64
    put("admission_review", review(weird))
    for body in ['{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', "{}", "[]", "null",
                 '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}', "{"]:
        put("admission_review", body)

    for path in sorted(glob.glob(os.path.join(ROOT, "constraints/*/template.yaml"))) + \
            sorted(glob.glob(os.path.join(ROOT, "constraints/*/samples/tracker/constraint.yaml"))) + \
            sorted(glob.glob(os.path.join(ROOT, "constraints/*/samples/tracker/expansion.yaml"))):
        with open(path) as f:
            put("load_policies", f.read())
    # One template, its constraint and a pod in one stream, so evaluation is reached.
    base = os.path.join(ROOT, "constraints/k8srequiredruntimeclass")
    with open(base + "/template.yaml") as t, open(base + "/samples/tracker/constraint.yaml") as c, \
            open(base + "/samples/tracker/example_allowed.yaml") as o:
        put("load_policies", t.read() + "\n---\n" + c.read() + "\n---\n" + o.read())
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/suites/*/suite.yaml")))[:6] + \
            sorted(glob.glob(os.path.join(ROOT, "tests/suites/admission-review/*.yaml"))) + \
            sorted(glob.glob(os.path.join(ROOT, "tests/suites/hoisting/*.yaml"))) + \
            sorted(glob.glob(os.path.join(ROOT, "tests/suites/v0-parser/*.yaml"))):
        with open(path) as f:
            text = f.read()
        if len(text) < 16384:
            put("load_policies", text)

    for path in sorted(glob.glob(os.path.join(ROOT, "policies/*/src.rego"))):
        with open(path) as f:
            src = f.read()
        put("rego_rewrite", b"\x01" + src.encode())
        put("rego_rewrite", b"\x03" + src.encode())
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/suites/*/*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not isinstance(doc, dict) or doc.get("kind") != "ConstraintTemplate":
                    continue
                for target in doc.get("spec", {}).get("targets", []):
                    if target.get("rego"):
                        put("rego_rewrite", b"\x02" + target["rego"].encode())
                    for code in target.get("code", []):
                        src = code.get("source", {})
                        if isinstance(src, dict) and src.get("rego"):
                            flag = b"\x03" if src.get("version") == "v1" else b"\x02"
                            put("rego_rewrite", flag + src["rego"].encode())

    for fmt in ["%s", "%v", "%d", "%q", "%x %X %o %b", "%5.2f %-8s|", "%[2]v %[1]v", "%!", "%%",
                "%e %g %G", "%+d %#x % d", "%T", "%*d", "%.*f", "%c %U", "%08.3f", "%[3]*.[2]*[1]f",
                'container %q: image %q is from registry %q, not one of %s']:
        put("go_sprintf", fmt)
        put("go_sprintf", fmt + "\0" + json.dumps([1, "x", 2.5, True, None, {"a": [1]}]))

    # Documents for the block-YAML shortcut: the samples as written (most are in its subset),
    # and a few that sit on its edges.
    for path in samples + sorted(glob.glob(os.path.join(ROOT, "constraints/*/samples/tracker/constraint.yaml"))):
        with open(path) as f:
            for doc in f.read().split("\n---"):
                if doc.strip():
                    put("block_yaml", doc.lstrip("-\n"))
    for doc in ["a: 1\nb:\n- c\n-\n  d: 'e'\n", "a:\n  - b: [] \n    c: {}\n# x\nd: 1Gi\n",
                "a: yes\nb: ~\nc: 007\n", "- a: 1\n  b:\n  - 2\n", "a: \"b c\"\nd: e:f\n"]:
        put("block_yaml", doc)


if __name__ == "__main__":
    sys.exit(main())
