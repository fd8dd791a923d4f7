#!/usr/bin/env python3
"""rstat.py CMD [ARGS]: read `relocctl status --json` on stdin.

  phase ID          phase of relocation ID, or "missing"
  get ID KEY        field KEY of relocation ID (JSON for non-strings)
  latest HOME       id of the newest relocation of HOME, or "missing"
  ids               ids of all relocations, one per line
  active            ids of relocations not in done/failed/aborted
  datastore HOME    datastore of HOME in "homes", or "missing"
  homes             "name datastore" lines, sorted
  top KEY           a top-level field ("mount", "source")
  validate [MNT SRC]
                    check the document against the contract (types and
                    keys, known phases, 0 <= bytes_copied <= bytes_total, and
                    with MNT SRC: mount and source name them); print every
                    problem, exit 1 if any
Paths are compared after os.path.realpath.
"""

import json
import os
import sys

PHASES = {"prepare", "copy", "converge", "ready", "cutover", "cleanup", "done", "failed", "aborted"}
TERMINAL = {"done", "failed", "aborted"}
INT_KEYS = ("id", "bytes_total", "bytes_copied", "rate_bps", "eta_s", "journal_bytes", "rounds")


def rel(doc, rid):
    for r in doc.get("relocations") or []:
        if str(r.get("id")) == str(rid):
            return r
    return None


def out(v):
    print(v if isinstance(v, str) else json.dumps(v))


def validate(doc, mnt=None, src=None):
    bad = []
    if not isinstance(doc, dict):
        return ["top level is not an object"]
    for k in ("mount", "source", "homes", "relocations"):
        if k not in doc:
            bad.append("missing top-level key %r" % k)
    if mnt and os.path.realpath(str(doc.get("mount"))) != os.path.realpath(mnt):
        bad.append("mount is %r, expected %r" % (doc.get("mount"), mnt))
    if src and os.path.realpath(str(doc.get("source"))) != os.path.realpath(src):
        bad.append("source is %r, expected %r" % (doc.get("source"), src))
    for h in doc.get("homes") or []:
        if not isinstance(h.get("name"), str) or not isinstance(h.get("datastore"), str):
            bad.append("bad home entry %r" % h)
    for r in doc.get("relocations") or []:
        for k in INT_KEYS:
            if not isinstance(r.get(k), int) or isinstance(r.get(k), bool):
                bad.append("relocation %r: %s is %r, not an integer" % (r.get("id"), k, r.get(k)))
        for k in ("home", "from", "to", "phase"):
            if not isinstance(r.get(k), str):
                bad.append("relocation %r: %s is %r, not a string" % (r.get("id"), k, r.get(k)))
        if not isinstance(r.get("pause_ms"), (int, float)) or isinstance(r.get("pause_ms"), bool):
            bad.append("relocation %r: pause_ms is %r, not a number" % (r.get("id"), r.get("pause_ms")))
        pa = r.get("pause_at")
        if not isinstance(pa, (int, float)) or isinstance(pa, bool) or pa < 0:
            bad.append("relocation %r: pause_at is %r, not a number >= 0" % (r.get("id"), pa))
        elif (pa > 0) != (isinstance(r.get("pause_ms"), (int, float)) and r["pause_ms"] > 0):
            bad.append("relocation %r: pause_at %r and pause_ms %r disagree" % (r.get("id"), pa, r.get("pause_ms")))
        if not isinstance(r.get("yielding"), bool):
            bad.append("relocation %r: yielding is %r, not a boolean" % (r.get("id"), r.get("yielding")))
        if not isinstance(r.get("yield_s"), (int, float)) or isinstance(r.get("yield_s"), bool) or r["yield_s"] < 0:
            bad.append("relocation %r: yield_s is %r, not a number >= 0" % (r.get("id"), r.get("yield_s")))
        if "error" in r and not isinstance(r["error"], (str, type(None))):
            bad.append("relocation %r: error is %r" % (r.get("id"), r.get("error")))
        if r.get("phase") not in PHASES:
            bad.append("relocation %r: unknown phase %r" % (r.get("id"), r.get("phase")))
        bt, bc = r.get("bytes_total"), r.get("bytes_copied")
        if isinstance(bt, int) and isinstance(bc, int) and not 0 <= bc <= bt:
            bad.append("relocation %r: bytes_copied %d not within 0..bytes_total %d" % (r.get("id"), bc, bt))
        if isinstance(r.get("id"), int) and r["id"] <= 0:
            bad.append("relocation id %r is not positive" % r["id"])
    return bad


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        doc = json.load(sys.stdin)
    except ValueError as ex:
        print("not JSON: %s" % ex)
        sys.exit(1)
    cmd = a[0]
    if cmd == "phase":
        r = rel(doc, a[1])
        out(r.get("phase") if r else "missing")
    elif cmd == "get":
        r = rel(doc, a[1])
        if r is None or a[2] not in r:
            print("missing")
            sys.exit(1)
        out(r[a[2]])
    elif cmd == "latest":
        rs = [r for r in doc.get("relocations") or [] if r.get("home") == a[1]]
        out(str(max(r["id"] for r in rs)) if rs else "missing")
    elif cmd == "ids":
        for r in doc.get("relocations") or []:
            print(r.get("id"))
    elif cmd == "active":
        for r in doc.get("relocations") or []:
            if r.get("phase") not in TERMINAL:
                print(r.get("id"))
    elif cmd == "datastore":
        for h in doc.get("homes") or []:
            if h.get("name") == a[1]:
                out(os.path.realpath(h.get("datastore")))
                return
        print("missing")
    elif cmd == "homes":
        for h in sorted(doc.get("homes") or [], key=lambda h: str(h.get("name"))):
            print("%s %s" % (h.get("name"), os.path.realpath(str(h.get("datastore")))))
    elif cmd == "top":
        out(doc.get(a[1]))
    elif cmd == "validate":
        bad = validate(doc, *(a[1:3]))
        for b in bad:
            print(b)
        sys.exit(1 if bad else 0)
    else:
        print("unknown command %r" % cmd, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
