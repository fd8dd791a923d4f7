#!/usr/bin/env python3
"""benchlib.py: the Python half of test/bench/run (make bench).

test/bench/run sets up the datastores and mounts, drives fio, cp, rsync and
relocctl, and appends every measured value to a TSV file, one line each:

    section <TAB> row <TAB> column <TAB> run <TAB> value

This file holds what is easier in Python than in bash:

    fio FILE.json METRIC          one number from fio's JSON output
    meta DIR N                    metadata workload (create, stat, readdir,
                                  unlink of N small files), JSON on stdout
    watch ...                     start a relocation with relocctl and follow
                                  it closely (polls status --json), JSON file
    stall WATCH.json LOGPREFIX    longest write stall at cutover, from fio's
                                  per-IO latency logs
    report SECTION TSV            print the table of one workload
    summary TSV                   print every target of the issue, PASS/MISS
    machine DIR...                print a description of the machine

It only measures and prints: nothing here asserts a speed.
"""
import glob
import json
import os
import statistics
import subprocess
import sys
import time

TERMINAL = ("done", "failed", "aborted")
MiB = 1024 * 1024
GiB = 1024 * MiB


def die(msg):
    print("benchlib: " + msg, file=sys.stderr)
    sys.exit(1)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# --------------------------------------------------------------------- fio

def fio_metric(path, metric):
    """Sums a metric over the jobs of one fio JSON output file."""
    with open(path) as f:
        text = f.read()
    # fio may print warnings before the JSON document.
    doc = json.loads(text[text.index("{"):])
    jobs = doc["jobs"]
    if metric == "rbw":        # MiB/s
        return sum(j["read"]["bw_bytes"] for j in jobs) / MiB
    if metric == "wbw":
        return sum(j["write"]["bw_bytes"] for j in jobs) / MiB
    if metric == "riops":
        return sum(j["read"]["iops"] for j in jobs)
    if metric == "wiops":
        return sum(j["write"]["iops"] for j in jobs)
    if metric == "wios":
        return sum(j["write"]["total_ios"] for j in jobs)
    if metric == "wbytes":
        return sum(j["write"]["io_bytes"] for j in jobs)
    if metric == "wruntime":   # seconds, longest job
        return max(j["write"]["runtime"] for j in jobs) / 1000.0
    if metric == "wclatmax":   # ms
        return max(j["write"]["clat_ns"]["max"] for j in jobs) / 1e6
    if metric == "errors":
        return sum(j["error"] for j in jobs)
    die("unknown fio metric " + metric)


def cmd_fio(args):
    v = fio_metric(args[0], args[1])
    print("%.6g" % v)


# --------------------------------------------------------------------- meta

def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def cmd_meta(args):
    """create, stat (cold), readdir (cold, then warm), unlink of N files of
    4 KiB in a fresh directory DIR/meta. Rates in operations per second."""
    base, n = args[0], int(args[1])
    d = os.path.join(base, "meta")
    if os.path.exists(d):
        subprocess.run(["rm", "-rf", "--", d], check=True)
    os.mkdir(d)
    names = [os.path.join(d, "f%06d" % i) for i in range(n)]
    buf = os.urandom(4096)
    out = {}

    t = time.perf_counter()
    for p in names:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, buf)
        os.close(fd)
    out["create"] = n / (time.perf_counter() - t)

    drop_caches()
    t = time.perf_counter()
    for p in names:
        os.stat(p)
    out["stat"] = n / (time.perf_counter() - t)

    passes = 5
    drop_caches()
    t = time.perf_counter()
    for _ in range(passes):
        if len(os.listdir(d)) != n:
            die("readdir of %s did not list %d entries" % (d, n))
    out["readdir"] = passes * n / (time.perf_counter() - t)

    t = time.perf_counter()
    for p in names:
        os.unlink(p)
    out["unlink"] = n / (time.perf_counter() - t)
    os.rmdir(d)
    print(json.dumps(out))


# --------------------------------------------------------------------- watch

def proc_cpu_s(pid):
    """utime + stime of every thread of PID, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime, stime are fields 14, 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def status_of(relocctl, home, rid):
    p = subprocess.run([relocctl, "status", home, "--json"],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        return None, p.stderr.strip()
    doc = json.loads(p.stdout)
    if isinstance(doc, list):
        doc = doc[0]
    for r in doc["relocations"]:
        if r["id"] == rid:
            return r, ""
    return None, "relocation %d not in the status" % rid


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def cmd_watch(args):
    """watch RELOCCTL HOME DATASTORE OUT.json PHASEFILE TIMEOUT_S PID [FLAGS...]

    Runs `relocctl migrate HOME --to DATASTORE FLAGS`, then polls
    `relocctl status HOME --json` every 50 ms until the relocation ends,
    writing its current phase to PHASEFILE at each poll. Past TIMEOUT_S
    seconds (0: never) it asks relocctl abort once and goes on polling.
    Writes OUT.json: start time, id, every poll (time, phase, copied,
    journal bytes, rounds), the final status record, the wall time, and the
    CPU seconds and peak RSS (VmHWM) of the daemon PID."""
    relocctl, home, to, out, phasefile = args[:5]
    timeout_s, pid = float(args[5]), int(args[6])
    flags = args[7:]
    res = {"home": home, "to": to, "flags": flags, "timed_out": False}
    cpu0 = proc_cpu_s(pid)
    t0 = time.time()
    res["t0"] = t0
    p = subprocess.run([relocctl, "migrate", home, "--to", to] + flags,
                       capture_output=True, text=True, timeout=120)
    first = p.stdout.split("\n")[0].strip()
    if p.returncode != 0 or not first.isdigit():
        res["error"] = "relocctl migrate: exit %d: %s" % (p.returncode, p.stderr.strip())
        write_atomic(phasefile, "failed\n")
        with open(out, "w") as f:
            json.dump(res, f)
        sys.exit(1)
    rid = int(first)
    res["id"] = rid
    polls = []
    last = None
    aborted = False
    errors = 0
    while True:
        ta = time.time()
        r, err = status_of(relocctl, home, rid)
        tb = time.time()
        if r is None:
            errors += 1
            if errors > 50:
                res["error"] = "relocctl status: " + err
                break
            time.sleep(0.1)
            continue
        tm = (ta + tb) / 2
        polls.append([tm, r["phase"], r["bytes_copied"], r["journal_bytes"], r["rounds"]])
        if r["phase"] != last:
            write_atomic(phasefile, r["phase"] + "\n")
            last = r["phase"]
        if r["phase"] in TERMINAL:
            res["final"] = r
            break
        if timeout_s > 0 and tb - t0 > timeout_s and not aborted:
            subprocess.run([relocctl, "abort", home], capture_output=True, timeout=60)
            aborted = True
            res["timed_out"] = True
        time.sleep(0.05)
    res["polls"] = polls
    res["t_end"] = polls[-1][0] if polls else time.time()
    res["wall"] = res["t_end"] - t0
    try:
        res["cpu_s"] = proc_cpu_s(pid) - cpu0
        res["hwm_kib"] = proc_status_kib(pid, "VmHWM")
    except OSError:
        pass
    # Start and end of each phase as seen by the polls.
    phases = {}
    for tm, ph, *_ in polls:
        if ph not in phases:
            phases[ph] = [tm, tm]
        phases[ph][1] = tm
    res["phases"] = phases
    with open(out, "w") as f:
        json.dump(res, f)
    print(json.dumps({k: res.get(k) for k in ("id", "wall", "timed_out", "cpu_s")}))


def cmd_wget(args):
    """wget WATCH.json KEY: one value of a watch result (final.X, wall,
    copy_s: how long the copy phase lasted, ...)."""
    with open(args[0]) as f:
        w = json.load(f)
    key = args[1]
    if key.startswith("final."):
        v = (w.get("final") or {}).get(key[6:])
    elif key == "copy_s":
        ph = w.get("phases", {})
        if "copy" not in ph:
            v = 0
        else:
            end = min([ph[p][0] for p in ph if p not in ("prepare", "copy")] or [ph["copy"][1]])
            v = end - ph["copy"][0]
    elif key == "journal_max":
        v = max([p[3] for p in w.get("polls", [])] or [0])
    else:
        v = w.get(key)
    if isinstance(v, bool):
        v = int(v)
    print(v if v is not None else "")


# --------------------------------------------------------------------- stall

def read_lat_logs(prefix):
    """(completion time s, latency ms) of every IO in PREFIX_clat.*.log."""
    ios = []
    files = sorted(glob.glob(prefix + "_clat.*.log"))
    if not files:
        die("no latency logs %s_clat.*.log" % prefix)
    for fn in files:
        with open(fn) as f:
            for line in f:
                parts = line.split(",")
                if len(parts) < 2:
                    continue
                ios.append((int(parts[0]) / 1000.0, int(parts[1]) / 1e6))
    return ios


def cmd_stall(args):
    """stall WATCH.json LOGPREFIX: JSON with the longest completion latency
    of an IO overlapping the cutover (from the last poll before the cutover
    to the first poll that saw the relocation done), of an IO during the
    rest of the relocation, and before it."""
    with open(args[0]) as f:
        w = json.load(f)
    ios = read_lat_logs(args[1])
    polls = w["polls"]
    post = ("cutover", "cleanup", "done")
    i_post = next((i for i, p in enumerate(polls) if p[1] in post), None)
    i_done = next((i for i, p in enumerate(polls) if p[1] == "done"), None)
    out = {"ios": len(ios)}
    if i_post is None or i_done is None:
        out["error"] = "the relocation did not cut over"
        print(json.dumps(out))
        return
    lo = polls[i_post - 1][0] if i_post > 0 else w["t0"]
    hi = polls[i_done][0]
    t0 = w["t0"]

    def overlaps(t, lat, a, b):
        return t >= a and t - lat / 1000.0 <= b

    cut = [lat for t, lat in ios if overlaps(t, lat, lo, hi)]
    # The writes that overlapped the pause itself (relocfs's pause_at and
    # pause_ms), apart from the rest of the window.
    fin = w.get("final") or {}
    pa, pm = fin.get("pause_at") or 0, fin.get("pause_ms") or 0
    in_pause = [lat for t, lat in ios if pa > 0 and overlaps(t, lat, pa, pa + pm / 1000.0)]
    out["pause_stall_ms"] = max(in_pause) if in_pause else None
    during = [lat for t, lat in ios if overlaps(t, lat, t0, lo) and not overlaps(t, lat, lo, hi)]
    before = [lat for t, lat in ios if t < t0]
    out.update({
        "window_ms": (hi - lo) * 1000,
        "stall_ms": max(cut) if cut else None,
        "ios_in_window": len(cut),
        "max_during_ms": max(during) if during else None,
        "max_before_ms": max(before) if before else None,
        "p99_during_ms": statistics.quantiles(during, n=100)[98] if len(during) > 100 else None,
    })
    span = (max(t for t, _ in ios) - min(t for t, _ in ios)) if ios else 0
    out["iops"] = len(ios) / span if span > 0 else 0
    print(json.dumps(out))


def cmd_cutlog(args):
    """cutlog LOG ID HOME: the KiB of journal that relocation ID applied
    inside its cutover pause, from relocfs's notice "relocation ID of HOME:
    cut over to ..., pause X ms (apply of N KiB ...)"."""
    import re
    pat = re.compile(r"relocation %s of %s: cut over to .* pause [\d.]+ ms \((?:drain [\d.]+, )?apply of (\d+) KiB"
                     % (re.escape(args[1]), re.escape(args[2])))
    found = ""
    with open(args[0], errors="replace") as f:
        for line in f:
            m = pat.search(line)
            if m:
                found = m.group(1)
    print(found)


def cmd_jget(args):
    """jget FILE.json KEY: one value of a flat JSON object (empty if null)."""
    with open(args[0]) as f:
        v = json.load(f).get(args[1])
    print("" if v is None else v)


# --------------------------------------------------------------------- tables

def load_tsv(path):
    """{section: {(row, col): {run: value}}}, plus the row/col order seen."""
    data, order = {}, {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            sec, row, col, run, val = line.split("\t")
            try:
                v = float(val)
            except ValueError:
                v = None
            data.setdefault(sec, {}).setdefault((row, col), {})[run] = v
            o = order.setdefault(sec, ([], []))
            if row not in o[0]:
                o[0].append(row)
            if col not in o[1]:
                o[1].append(col)
    return data, order


def med(data, sec, row, col):
    return median(list(data.get(sec, {}).get((row, col), {}).values()))


def runs_of(data, sec, row, col):
    return data.get(sec, {}).get((row, col), {})


def ratio_med(data, sec, row, col, ref_row, ref_col):
    """Median over the runs of value(row, col) / value(ref_row, ref_col) of
    the same run: with A and B interleaved, drift cancels in each ratio."""
    a = runs_of(data, sec, row, col)
    b = runs_of(data, sec, ref_row, ref_col)
    rs = [a[r] / b[r] for r in a if r in b and a[r] is not None and b[r]]
    return median(rs)


def fmt(v, unit=""):
    if v is None:
        return "-"
    if float(v).is_integer():
        return "%d" % v
    if unit in ("IOPS", "files/s", "stats/s", "entries/s"):
        return "%.0f" % v
    if abs(v) >= 1000:
        return "%.0f" % v
    if abs(v) >= 100:
        return "%.1f" % v
    if abs(v) >= 10:
        return "%.2f" % v
    return "%.3f" % v


def fx(r):
    return "-" if r is None else "%.2fx" % r


def disk_label(key):
    """'8192MiB/16' -> '8 GiB'"""
    mib = int(key.split("/")[0].rstrip("MiB"))
    return "%d GiB" % (mib // 1024) if mib % 1024 == 0 else "%d MiB" % mib


def print_table(head, rows):
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(
        (str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])) for i, c in enumerate(r))
    print(line(head))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


PT_ROWS = [
    ("seqwrite", "seq write 1M, fsync at end", "MiB/s"),
    ("seqread_cold", "seq read 1M, cold cache", "MiB/s"),
    ("seqread_cached", "seq read 1M, cached", "MiB/s"),
    ("randread_buf", "4k rand read, buffered (cold)", "IOPS"),
    ("randread_direct", "4k rand read, O_DIRECT", "IOPS"),
    ("randwrite_buf", "4k rand write, buffered, fsync at end", "IOPS"),
    ("randwrite_direct", "4k rand write, O_DIRECT", "IOPS"),
    ("create", "create 4 KiB files", "files/s"),
    ("stat", "stat files, cold cache", "stats/s"),
    ("readdir", "readdir (5 passes, first cold)", "entries/s"),
    ("unlink", "unlink files", "files/s"),
]
PT_COLS = ["native", "relocfs", "bindfs", "mergerfs"]
WBC = "relocfs-wbc"     # a second relocfs with fuse.writeback_cache = true
URING = "relocfs-uring"  # a third, its requests over io_uring (enable_uring on)


def noisy(data, sec, cells, limit=1.5):
    """Notes the cells whose runs differ by more than LIMIT x (max / min):
    their median is less certain than the others."""
    out = []
    for label, row, col in cells:
        vs = [v for v in runs_of(data, sec, row, col).values() if v]
        if len(vs) > 1 and max(vs) / min(vs) > limit:
            out.append("%s %s %s-%s" % (label, col, fmt(min(vs)), fmt(max(vs))))
    if out:
        print("runs differing by more than %.1fx (min-max): %s" % (limit, "; ".join(out)))


def report_passthrough(data, order):
    sec = "passthrough"
    rows = []
    for key, label, unit in PT_ROWS:
        if not any(runs_of(data, sec, key, c) for c in PT_COLS):
            continue
        r = [label, unit]
        for c in PT_COLS:
            v = med(data, sec, key, c)
            r.append(fmt(v, unit))
            if c != "native":
                r.append(fx(ratio_med(data, sec, key, c, key, "native")))
        rows.append(r)
    print_table(["workload", "unit", "native", "relocfs", "x native", "bindfs", "x native",
                 "mergerfs", "x native"], rows)
    noisy(data, sec, [(key, key, c) for key, _, _ in PT_ROWS for c in PT_COLS + [WBC, URING]])
    ur = []
    for key, label, unit in PT_ROWS:
        v = med(data, sec, key, URING)
        if v is not None:
            ur.append("%s %s %s (%s native, %s of relocfs over /dev/fuse)"
                      % (label, fmt(v, unit), unit, fx(ratio_med(data, sec, key, URING, key, "native")),
                         fx(ratio_med(data, sec, key, URING, key, "relocfs"))))
    if ur:
        print("relocfs with its requests over io_uring (the shipped settings; the fuse module's "
              "enable_uring, off by default, switched on for its mount; README.md):")
        for line in ur:
            print("  " + line)
    wbc = []
    for key, label, unit in PT_ROWS:
        v = med(data, sec, key, WBC)
        if v is not None:
            wbc.append("%s %s %s (%s native)" % (label, fmt(v, unit), unit,
                                                 fx(ratio_med(data, sec, key, WBC, key, "native"))))
    if wbc:
        print("relocfs with fuse.writeback_cache = true (not the default; relocfs.conf(5)): "
              + "; ".join(wbc))


def report_during(data, order):
    sec = "during"
    rows = []
    for key, label, unit in [("randwrite_direct", "4k rand write, O_DIRECT", "IOPS"),
                             ("seqread_cold", "seq read 1M, cold cache", "MiB/s")]:
        if not runs_of(data, sec, key, "idle"):
            continue
        copying = runs_of(data, sec, key, "copying_at_end")
        rows.append([label, unit, fmt(med(data, sec, key, "idle"), unit),
                     fmt(med(data, sec, key, "reloc"), unit),
                     fx(ratio_med(data, sec, key, "reloc", key, "idle")),
                     "%d/%d" % (sum(1 for v in copying.values() if v), len(copying)),
                     fmt(med(data, sec, key, "yield_s"))])
    print_table(["load (through relocfs)", "unit", "no relocation", "during relocation",
                 "ratio", "still copying at end", "copy yielded s"], rows)
    noisy(data, sec, [(k, k, c) for k in ("randwrite_direct", "seqread_cold") for c in ("idle", "reloc")])


def report_copy(data, order):
    sec = "copy"
    rows = []
    for key, label in [("relocfs", "relocctl migrate (relocfs)"), ("cp", "cp -a + sync"),
                       ("rsync", "rsync -a + sync")]:
        if not runs_of(data, sec, key, "time_s"):
            continue
        t = med(data, sec, key, "time_s")
        mb = med(data, sec, key, "mibs")
        rows.append([label, fmt(t), fmt(mb), fx(ratio_med(data, sec, key, "time_s", "cp", "time_s")),
                     fmt(med(data, sec, key, "cpu_s_per_gib"))])
    print_table(["copy of the idle home", "time s", "MiB/s", "time x cp -a", "daemon CPU s/GiB"], rows)


def report_cutover(data, order):
    sec = "cutover"
    rows = []
    keys = sorted(order.get(sec, ([], []))[0], key=lambda k: (int(k.split("/")[0].rstrip("MiB")), int(k.split("/")[1])))
    for key in keys:
        handles = key.split("/")[1]
        rows.append([disk_label(key), handles,
                     fmt(med(data, sec, key, "stall_ms")),
                     "/".join(fmt(v) for v in sorted(x for x in runs_of(data, sec, key, "stall_ms").values() if x is not None)),
                     fmt(med(data, sec, key, "pause_stall_ms")),
                     fmt(med(data, sec, key, "pause_ms")),
                     fmt(med(data, sec, key, "applied_kib")),
                     fmt(med(data, sec, key, "rounds")),
                     fmt(med(data, sec, key, "max_during_ms")),
                     fmt(med(data, sec, key, "max_before_ms")),
                     fmt(med(data, sec, key, "iops")),
                     fmt(med(data, sec, key, "reloc_s"))])
    print_table(["disk", "handles", "stall ms", "(each run)", "writes in the pause ms", "pause ms (relocfs)",
                 "KiB applied in pause", "rounds", "max lat during copy ms", "max lat before ms", "IOPS", "relocation s"], rows)


def report_converge(data, order):
    sec = "converge"
    rows = []
    for key in order.get(sec, ([], []))[0]:
        fin = runs_of(data, sec, key, "finished")
        if key == "cp":
            label = "cp -a + sync (cold copy)"
        elif key == "0":
            label = "relocation, no writer"
        else:
            label = "relocation, writer at %s%%" % key
        rows.append([label,
                     fmt(med(data, sec, key, "target_mibs")),
                     fmt(med(data, sec, key, "writer_mibs")),
                     "%d/%d" % (sum(1 for v in fin.values() if v), len(fin)) if key != "cp" else "-",
                     fmt(med(data, sec, key, "time_s")),
                     fx(ratio_med(data, sec, key, "time_s", "cp", "time_s")),
                     fmt(med(data, sec, key, "pause_ms")) if key != "cp" else "-",
                     fmt(med(data, sec, key, "rounds")) if key != "cp" else "-",
                     fmt(med(data, sec, key, "journal_max_mib")) if key != "cp" else "-"])
    print_table(["", "writer target MiB/s", "writer got MiB/s", "finished", "time s",
                 "x cp -a", "pause ms", "rounds", "journal max MiB"], rows)


def report_memory(data, order):
    sec = "memory"
    labels = [("writes", "random 4k writes journaled", ""),
              ("write_iops", "their rate, IOPS", ""),
              ("rss_old_mib", "RSS of the daemon that ran workloads 1-5, MiB", ""),
              ("rss_before_mib", "fresh daemon: RSS before, MiB", ""),
              ("peak_rss_mib", "fresh daemon: peak RSS (VmHWM), MiB", ""),
              ("journal_max_mib", "journal at its largest, MiB", ""),
              ("home_gib", "home size, GiB", ""),
              ("reloc_s", "relocation time, s", ""),
              ("cpu_s", "daemon CPU s (user+sys) over the relocation", ""),
              ("cpu_s_per_gib", "daemon CPU s per GiB relocated", "")]
    rows = []
    for key, label, _ in labels:
        vals = runs_of(data, sec, key, "value")
        if not vals:
            continue
        rows.append([label, fmt(median(list(vals.values()))),
                     "/".join(fmt(v) for v in vals.values())])
    print_table(["one relocation with random 4k O_DIRECT writes", "median", "each run"], rows)


REPORTS = {"passthrough": report_passthrough, "during": report_during, "copy": report_copy,
           "cutover": report_cutover, "converge": report_converge, "memory": report_memory}


def cmd_report(args):
    sec, path = args
    data, order = load_tsv(path)
    if sec not in data:
        print("(no results)")
        return
    REPORTS[sec](data, order)


# --------------------------------------------------------------------- summary

def cmd_summary(args):
    data, order = load_tsv(args[0])
    lines = []

    def target(ok, text):
        if ok is None:
            lines.append("n/a:  " + text)
        else:
            lines.append(("PASS: " if ok else "MISS: ") + text)

    # 1. Passthrough
    sec = "passthrough"
    if sec in data:
        for key, want, what in [("seqwrite", 0.8, "seq write 1M (fsync)"),
                                ("seqread_cached", 0.9, "cached seq read 1M"),
                                ("randwrite_buf", 0.5, "4k randwrite buffered (fsync at end)"),
                                ("randwrite_direct", 0.5, "4k randwrite O_DIRECT")]:
            r = ratio_med(data, sec, key, "relocfs", key, "native")
            target(None if r is None else r >= want,
                   "passthrough: relocfs %s %s native (target >= %.1fx)" % (what, fx(r), want))
            r = ratio_med(data, sec, key, WBC, key, "native")
            if r is not None:
                lines.append("info: with fuse.writeback_cache = true (not the default, not counted): "
                             "%s %s native (target >= %.1fx)" % (what, fx(r), want))
            r = ratio_med(data, sec, key, URING, key, "native")
            if r is not None:
                lines.append("info: over io_uring (the kernel's enable_uring on, not counted): "
                             "%s %s native (target >= %.1fx: %s)" % (what, fx(r), want,
                                                                    "met" if r >= want else "missed"))
        for key, label, unit in PT_ROWS:
            v = med(data, sec, key, "relocfs")
            peers = [(p, med(data, sec, key, p)) for p in ("bindfs", "mergerfs")]
            have = [(p, x) for p, x in peers if x is not None]
            if v is None or not have:
                continue
            ok = all(v > x for _, x in have)
            failed = [p for p, x in peers if x is None]
            target(ok, "passthrough: relocfs ahead of %s on %s: %s vs %s %s%s"
                   % (" and ".join(p for p, _ in have), label, fmt(v, unit),
                      " / ".join(fmt(x, unit) for _, x in have), unit,
                      "".join(" (%s: failed)" % p for p in failed)))
            u = med(data, sec, key, URING)
            if u is not None:
                lines.append("info: over io_uring (not counted): %s %s %s, %s of both peers"
                             % (label, fmt(u, unit), unit,
                                "ahead" if all(u > x for _, x in have) else "not ahead"))
    # 2. During a relocation
    sec = "during"
    if sec in data:
        for key, what in [("randwrite_direct", "4k randwrite O_DIRECT"),
                          ("seqread_cold", "seq read 1M cold")]:
            r = ratio_med(data, sec, key, "reloc", key, "idle")
            if r is None:
                continue
            target(r >= 0.7, "during relocation: %s %s of the same load without one (target >= 0.7x)"
                   % (what, fx(r)))
    # 3. Copy
    sec = "copy"
    if sec in data:
        r = ratio_med(data, sec, "relocfs", "time_s", "cp", "time_s")
        target(None if r is None else r <= 1.1,
               "idle relocation: %s s = %s the cp -a time of %s s (target <= 1.1x)"
               % (fmt(med(data, sec, "relocfs", "time_s")), fx(r), fmt(med(data, sec, "cp", "time_s"))))
    # 4. Cutover
    sec = "cutover"
    if sec in data:
        keys = sorted(order[sec][0], key=lambda k: (int(k.split("/")[0].rstrip("MiB")), int(k.split("/")[1])))
        st = {k: med(data, sec, k, "stall_ms") for k in keys}
        for k in keys:
            v = st[k]
            target(None if v is None else v <= 20,
                   "cutover: longest stall %s ms, disk %s, %s handle(s) (target <= 20 ms)"
                   % (fmt(v), disk_label(k), k.split("/")[1]))

        # Grows: a bigger disk (same handles) or more handles (same disk)
        # shows a stall over 1.5x the smaller case's plus 2 ms.
        def mib(k):
            return int(k.split("/")[0].rstrip("MiB"))

        def hnd(k):
            return int(k.split("/")[1].split()[0])

        grows = []
        for a in keys:
            for b in keys:
                if st[a] is None or st[b] is None:
                    continue
                bigger = (hnd(a) == hnd(b) and mib(b) > mib(a)) or (mib(a) == mib(b) and hnd(b) > hnd(a))
                if bigger and st[b] > 1.5 * st[a] + 2:
                    grows.append("%s/%s -> %s/%s handles: %s -> %s ms" % (
                        disk_label(a), hnd(a), disk_label(b), hnd(b), fmt(st[a]), fmt(st[b])))
        if len(keys) > 1:
            target(not grows, "cutover: stall does not grow with disk size or handle count%s"
                   % (" (" + "; ".join(grows) + ")" if grows else "")
                   + " (grows = more than 1.5x + 2 ms of the smaller case)")
    # 5. Convergence
    sec = "converge"
    if sec in data:
        cp = med(data, sec, "cp", "time_s")
        for key in order[sec][0]:
            if key in ("cp", "0"):
                continue
            fin = runs_of(data, sec, key, "finished")
            n = sum(1 for v in fin.values() if v)
            target(n == len(fin), "convergence: writer at %s%% of the copy bandwidth: finished %d of %d, "
                   "pause %s ms" % (key, n, len(fin), fmt(med(data, sec, key, "pause_ms"))))
        r = ratio_med(data, sec, "50", "time_s", "cp", "time_s")
        if runs_of(data, sec, "50", "time_s"):
            target(None if r is None else r <= 2.0,
                   "convergence: writer at 50%%: %s s = %s the cold copy (cp -a) time of %s s (target <= 2x)"
                   % (fmt(med(data, sec, "50", "time_s")), fx(r), fmt(cp)))
    # 6. Memory
    sec = "memory"
    if sec in data:
        v = med(data, sec, "peak_rss_mib", "value")
        w = med(data, sec, "writes", "value")
        target(None if v is None else v <= 64,
               "memory: peak RSS %s MiB with %s random 4k writes journaled (target <= 64 MiB)"
               % (fmt(v), fmt(w)))
        c = med(data, sec, "cpu_s_per_gib", "value")
        lines.append("info: CPU %s s per GiB relocated with those writes (no target)" % fmt(c))
    for line in lines:
        print(line)
    miss = sum(1 for line in lines if line.startswith("MISS"))
    npass = sum(1 for line in lines if line.startswith("PASS"))
    print("%d targets met, %d missed" % (npass, miss))


# --------------------------------------------------------------------- machine

def cmd_machine(args):
    def sh(cmd):
        p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        return p.stdout.strip()

    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    print("date:      %s" % time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    print("machine:   %s CPUs (nproc), %s, %.1f GiB RAM" % (os.cpu_count(), model or "?", mem_kib / 1048576))
    print("kernel:    %s" % sh("uname -srm"))
    print("os:        %s" % sh(". /etc/os-release && echo \"$PRETTY_NAME\""))
    for d in args:
        src = sh("findmnt -no SOURCE --target %s" % d)
        fs = sh("findmnt -no FSTYPE --target %s" % d)
        extra = ""
        if src.startswith("/dev/loop"):
            back = sh("losetup -nO BACK-FILE,DIO %s" % src)
            bf = back.split()[0] if back else "?"
            extra = ", loop device on %s (direct I/O %s), which is on %s %s" % (
                os.path.basename(bf), "on" if back.endswith("1") else "off",
                sh("findmnt -no FSTYPE --target %s" % os.path.dirname(bf)),
                sh("findmnt -no SOURCE --target %s" % os.path.dirname(bf)))
        print("fs:        %s: %s on %s%s" % (d, fs, src, extra))
    print("tools:     %s; bindfs %s; mergerfs %s; %s; %s" % (
        sh("fio --version"), sh("bindfs --version | head -n1 | awk '{print $2}'"),
        sh("mergerfs --version 2>&1 | head -n1 | awk '{print $NF}'"),
        sh("rsync --version | head -n1 | awk '{print $1, $3}'"),
        sh("cp --version | head -n1")))


COMMANDS = {"fio": cmd_fio, "meta": cmd_meta, "watch": cmd_watch, "wget": cmd_wget,
            "stall": cmd_stall, "cutlog": cmd_cutlog, "jget": cmd_jget, "report": cmd_report,
            "summary": cmd_summary, "machine": cmd_machine}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        die("usage: benchlib.py {%s} ..." % ",".join(COMMANDS))
    COMMANDS[sys.argv[1]](sys.argv[2:])
