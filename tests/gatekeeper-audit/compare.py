"""Compares the constraint statuses Gatekeeper's audit wrote with tollgate's.

Usage: compare.py GATEKEEPER.json TOLLGATE.json LIMIT [GATEKEEPER-METRICS TOLLGATE-METRICS]

Each JSON file is the `items` of `kubectl get constraints -o json` after an audit pass. Prints one
PASS/FAIL line per check (run.sh counts them) and indented detail lines under a FAIL; exits 0.

Compared per constraint: status.totalViolations, and status.violations as JSON, in order (a list
Gatekeeper leaves out must be left out). Other status fields are the status operation's (byPod)
or the pass's time (auditTimestamp): listed in a note, not compared. One normalisation: a
violation's scoped `enforcementActions` are compared sorted, because Gatekeeper lists them in Go
map iteration order (frameworks' constraint_client.go ranges over a map), which varies from one
review to the next.
"""

import json
import re
import sys

AUDIT_FIELDS = {"totalViolations", "violations", "auditTimestamp"}


def load(path):
    return {(c["kind"], c["metadata"]["name"]): c.get("status") or {} for c in json.load(open(path))}


def sort_actions(violations, reordered):
    """The list with each enforcementActions sorted; counts those that were not in order."""
    if violations is None:
        return None
    out = []
    for v in violations:
        if "enforcementActions" in v:
            s = sorted(v["enforcementActions"])
            if s != v["enforcementActions"]:
                reordered[0] += 1
            v = dict(v, enforcementActions=s)
        out.append(v)
    return out


def show(v):
    return json.dumps(v, ensure_ascii=False)


def nbytes(s):
    return len(s.encode("utf-8", "surrogatepass"))


def describe_message(m):
    tail = m[-12:]
    return "%d bytes, %d chars, ends %s" % (nbytes(m), len(m), json.dumps(tail))


def diff_violations(gk, tg):
    """Detail lines: how two violation lists differ."""
    lines = []
    if gk is None or tg is None:
        lines.append("gatekeeper %s, tollgate %s" % (
            "has no violations field" if gk is None else "lists %d" % len(gk),
            "has no violations field" if tg is None else "lists %d" % len(tg)))
        return lines
    if len(gk) != len(tg):
        lines.append("gatekeeper lists %d, tollgate %d" % (len(gk), len(tg)))
    for i, (a, b) in enumerate(zip(gk, tg)):
        if a == b:
            continue
        fields = sorted(set(a) | set(b))
        for f in fields:
            if a.get(f) != b.get(f):
                if f == "message" and isinstance(a.get(f), str) and isinstance(b.get(f), str):
                    lines.append("[%d] message: gatekeeper %s; tollgate %s" % (
                        i, describe_message(a[f]), describe_message(b[f])))
                else:
                    lines.append("[%d] %s: gatekeeper %s, tollgate %s" % (
                        i, f, show(a.get(f, "(absent)")), show(b.get(f, "(absent)"))))
        if len(lines) > 12:
            lines.append("...")
            break
    only_gk = [v for v in gk if v not in tg]
    only_tg = [v for v in tg if v not in gk]
    for v in only_gk[:3]:
        lines.append("only gatekeeper: %s" % show(v))
    for v in only_tg[:3]:
        lines.append("only tollgate:   %s" % show(v))
    return lines


def summary(gk, tg):
    """One phrase naming how two violation lists differ."""
    gk, tg = gk or [], tg or []
    if len(gk) == len(tg):
        counts = {}
        for a, b in zip(gk, tg):
            for f in sorted(set(a) | set(b)):
                if a.get(f) != b.get(f):
                    counts[f] = counts.get(f, 0) + 1
        return "field %s" % ", ".join("%s in %d of %d" % (f, n, len(gk)) for f, n in sorted(counts.items()))

    def who(vs):
        return ", ".join(sorted({"%s %s/%s" % (v["kind"], v.get("namespace", ""), v["name"]) for v in vs})) or "-"
    return "gatekeeper lists %d (%s), tollgate %d (%s)" % (len(gk), who(gk), len(tg), who(tg))


def metrics(path):
    out = {}
    for line in open(path):
        m = re.match(r'^gatekeeper_violations\{(.*)\}\s+(\S+)', line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def main():
    gk, tg = load(sys.argv[1]), load(sys.argv[2])
    limit = int(sys.argv[3])
    notes = set()
    reordered = {"gatekeeper": [0], "tollgate": [0]}
    for key in sorted(set(gk) | set(tg)):
        name = "%s/%s" % key
        if key not in gk or key not in tg:
            print("FAIL: %s: status from %s only" % (name, "gatekeeper" if key in gk else "tollgate"))
            continue
        a, b = gk[key], tg[key]
        ta, tb = a.get("totalViolations"), b.get("totalViolations")
        if ta == tb:
            print("PASS: %s: totalViolations %s from both" % (name, ta))
        else:
            print("FAIL: %s: totalViolations: gatekeeper %s, tollgate %s" % (name, ta, tb))
        va = sort_actions(a.get("violations"), reordered["gatekeeper"])
        vb = sort_actions(b.get("violations"), reordered["tollgate"])
        if va == vb:
            shown = "no violations field in either" if va is None else "%d violations identical, in order" % len(va)
            print("PASS: %s: %s" % (name, shown))
        else:
            print("FAIL: %s: status.violations differ: %s" % (name, summary(va, vb)))
            for line in diff_violations(va, vb):
                print("    " + line)
        for who, s in (("gatekeeper", a), ("tollgate", b)):
            extra = sorted(set(s) - AUDIT_FIELDS)
            if extra:
                notes.add("%s also writes status.%s (not the audit's; not compared)" % (who, ", status.".join(extra)))
    for who, n in reordered.items():
        if n[0]:
            notes.add("%s listed enforcementActions out of sorted order in %d violations (compared sorted)" % (who, n[0]))
    for n in sorted(notes):
        print("note: " + n)

    # The scenario covers what it claims (on Gatekeeper's side, the oracle).
    every = [v for s in gk.values() for v in (s.get("violations") or [])]
    over = [k for k, s in gk.items() if (s.get("totalViolations") or 0) > limit]
    cut = [v for v in every if v["message"].endswith("...") and nbytes(v["message"]) >= 256]
    actions = sorted({v["enforcementAction"] for v in every})
    scoped = [v for v in every if v.get("enforcementActions")]
    checks = [
        (len(over) > 0, "constraints with more violations than the limit (%d): %d" % (limit, len(over))),
        (len(cut) > 0, "violations with a message cut at 256 bytes: %d" % len(cut)),
        (set(actions) >= {"deny", "dryrun", "warn", "scoped"}, "enforcement actions reported: %s" % ", ".join(actions)),
        (len(scoped) > 0, "violations listing scoped enforcementActions: %d" % len(scoped)),
    ]
    for ok, what in checks:
        print("%s: scenario: %s" % ("PASS" if ok else "FAIL", what))

    if len(sys.argv) > 5:
        ma, mb = metrics(sys.argv[4]), metrics(sys.argv[5])
        for labels in sorted(set(ma) | set(mb)):
            a, b = ma.get(labels), mb.get(labels)
            if a == b:
                print("PASS: metric gatekeeper_violations{%s} %g from both" % (labels, a))
            else:
                print("FAIL: metric gatekeeper_violations{%s}: gatekeeper %s, tollgate %s" % (
                    labels, "absent" if a is None else "%g" % a, "absent" if b is None else "%g" % b))


main()
