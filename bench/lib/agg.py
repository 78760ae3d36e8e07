#!/usr/bin/python3
"""Aggregates bench/run's raw measurements: medians, min-max noise, the
berth/distribution ratio and the targets, as a terminal table (.txt), .json,
.csv and a PNG plot of the ratios (matplotlib; skipped if it is missing)."""
import argparse
import csv
import json
import math
import re
import statistics
import sys
from collections import defaultdict

SERVERS = ("berth", "distribution", "nginx")
LOWER_IS_BETTER = ("p99-ms", "MiB", "s", "s/GiB")
# the single 1 GiB push, shown as a share of the two physical limits
SINGLE_PUSH = "upload.mono.1024MiB.c1"


def num(v):
    try:
        return float(v)
    except ValueError:
        return None


def load(raw, cpu):
    vals = defaultdict(list)  # (workload, metric, server) -> [value | "error" | "n/a"]
    order = []
    meta = {}
    for line in open(raw):
        p = line.rstrip("\n").split("\t")
        if len(p) != 5:
            continue
        rnd, server, wl, metric, v = p
        if wl == "info":
            meta["%s.%s" % (server, metric)] = v
            continue
        key = (wl, metric)
        if key not in order:
            order.append(key)
        vals[(wl, metric, server)].append(v)
    # CPU seconds per GiB moved, per round: push from uploads, pull from downloads
    per = defaultdict(lambda: [0.0, 0])
    for line in open(cpu):
        p = line.rstrip("\n").split("\t")
        if len(p) < 4:
            continue
        kind = p[4] if len(p) > 4 else "push"
        acc = per[(p[0], p[1], kind)]
        acc[0] += float(p[2])
        acc[1] += int(p[3])
    for (rnd, server, kind), (sec, nbytes) in sorted(per.items()):
        if nbytes:
            key = ("cpu.%s" % kind, "s/GiB")
            if key not in order:
                order.append(key)
            vals[("cpu.%s" % kind, "s/GiB", server)].append("%.6g" % (sec / (nbytes / 2**30)))
    return order, vals, meta


def summary(values):
    nums = [num(v) for v in values if num(v) is not None]
    errors = sum(1 for v in values if v == "error")
    na = sum(1 for v in values if v == "n/a")
    if nums:
        return {"median": statistics.median(nums), "min": min(nums), "max": max(nums),
                "n": len(nums), "errors": errors, "values": nums}
    return {"median": None, "status": "n/a" if na and not errors else "error",
            "n": 0, "errors": errors, "values": []}


def limit_of(vals, name):
    s = summary(vals.get((name, "MB/s", "limit"), []))
    return s["median"]


def targets_for(wl, metric, row, vals, limits):
    """List of (description, pass: True/False/None, detail)."""
    b = row["berth"]["median"]
    ratio = row["ratio"]
    t = []

    def ratio_ge(x):
        t.append(("≥%g× distribution" % x, None if ratio is None else ratio >= x, ratio))

    def ratio_le(x):
        t.append(("≤1/%g of distribution" % (1 / x), None if ratio is None else ratio <= x, ratio))

    m = re.match(r"manifest\.(GET|HEAD)\.(tag|digest)\.(h1|h2)\.(c\d+)$", wl)
    if m and metric == "req/s":
        ratio_ge(20)
        ng = summary(vals.get(("manifest.%s.any.%s.%s" % (m.group(1), m.group(3), m.group(4)),
                               "req/s", "nginx"), []))["median"]
        frac = b / ng if (b is not None and ng) else None
        t.append(("≥80% of nginx", None if frac is None else frac >= 0.8, frac))
    elif m and metric == "p99-ms":
        ratio_le(0.1)
    elif re.match(r"blob\.get\.4KiB", wl) and metric == "req/s":
        ratio_ge(20)
    elif re.match(r"blob\.get\.\d+MiB", wl) and metric == "MB/s":
        ratio_ge(1.5)
        lo = limits.get("loopback-tcp")
        frac = b / lo if (b is not None and lo) else None
        t.append(("≥80% of loopback", None if frac is None else frac >= 0.8, frac))
    elif wl.startswith("upload.h2tls.") and metric == "MB/s":
        # either bound: twice distribution, or the client's own h2 ceiling
        sink = limits.get("upload.h2tls.sink")
        frac = b / sink if (b is not None and sink) else None
        ok = [x for x in (None if ratio is None else ratio >= 2, None if frac is None else frac >= 0.9)
              if x is not None]
        t.append(("≥2× distribution (%s) or ≥90%% of the h2 sink (%s)" % (fmt(ratio), fmt(frac)),
                  (True in ok) if ok else None, ratio))
    elif wl.startswith("upload.") and metric == "MB/s":
        ratio_ge(2)
    elif wl == SINGLE_PUSH and metric in ("%sha256", "%disk"):
        # ≥60% of one core's SHA-256 or ≥90% of the fsync'd disk rate,
        # whichever is lower: the target sits on the line of the lower one
        sha, disk = limits.get("sha256-1core"), limits.get("disk-write-fsync")
        if sha and disk:
            binding = "%sha256" if 0.6 * sha <= 0.9 * disk else "%disk"
            if metric == binding:
                x = 60 if binding == "%sha256" else 90
                t.append(("≥%d%% (the lower bound)" % x, None if b is None else b >= x, b))
    elif wl.startswith("latency.manifest-under-upload") and metric == "p99-ms":
        ratio_le(0.5)
    elif wl.startswith("rss.peak.upload16x") and metric == "MiB":
        t.append(("≤ 64 MiB", None if b is None else b <= 64, b))
    elif wl.startswith("skopeo.push.") and wl.endswith(".tls") and metric == "s":
        ratio_le(1 / 1.5)  # ≥1.5× faster
    elif re.match(r"docker\.push\.\d+MiB$", wl) and metric == "s":
        t.append(("≤1× distribution (not slower)", None if ratio is None else ratio <= 1, ratio))
    elif (wl.startswith("tags-list.") or wl.startswith("catalog.")) and metric == "req/s":
        ratio_ge(50)
    elif wl == "rss.peak" and metric == "MiB":
        ratio_le(0.1)
    elif wl == "rss.idle" and metric == "MiB":
        t.append(("< 10 MiB", None if b is None else b < 10, b))
    return t


def derive_single_push(order, vals, limits):
    """upload.mono.1GiBx1.c1 per round as % of one core's SHA-256 rate and of
    the disk's fsync'd write rate (distribution: its POST+PUT line)."""
    for metric, lim in (("%sha256", "sha256-1core"), ("%disk", "disk-write-fsync")):
        lv = limits.get(lim)
        if not lv:
            continue
        for srv in ("berth", "distribution"):
            src = vals.get(("upload.mono.1GiBx1.c1", "MB/s", srv), [])
            if not [v for v in src if num(v) is not None]:
                src = vals.get(("upload.postput.1GiBx1.c1", "MB/s", srv), [])
            if not src:
                continue
            vals[(SINGLE_PUSH, metric, srv)] = ["%.6g" % (100 * num(v) / lv) if num(v) is not None else v
                                                for v in src]
            if (SINGLE_PUSH, metric) not in order:
                order.append((SINGLE_PUSH, metric))


def derive_disk16(order, vals, limits):
    """The 16 concurrent uploads (upload.*.NNNMiB.c16[-1proc] of the
    under-upload group) as % of the disk's rate for 16 fsync'd writers of the
    same size, measured in the same rounds: both servers fsync every blob, so
    that rate bounds the row on a slow disk."""
    for (lim, metric) in [k for k in order if k[0].startswith("disk-write-fsync-16x")]:
        lv = limits.get(lim)
        size = lim[len("disk-write-fsync-16x"):]
        mib = int(size[:-3]) * (1024 if size.endswith("GiB") else 1)
        if not lv:
            continue
        for variant in ("", "-1proc"):
            dst = "upload.c16x%dMiB%s" % (mib, variant)
            for srv in ("berth", "distribution"):
                src = []
                for flow in ("mono", "postput"):
                    src = [v for v in vals.get(("upload.%s.%dMiB.c16%s" % (flow, mib, variant), "MB/s", srv), [])
                           if num(v) is not None]
                    if src:
                        break
                if src:
                    vals[(dst, "%disk16", srv)] = ["%.6g" % (100 * num(v) / lv) for v in src]
                    if (dst, "%disk16") not in order:
                        order.append((dst, "%disk16"))


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return "%.0f" % v
    if a >= 100:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3g" % v


def cell(s):
    if s["median"] is None:
        return s.get("status", "-")
    txt = fmt(s["median"])
    if s["n"] > 1:
        txt += " [%s–%s]" % (fmt(s["min"]), fmt(s["max"]))
    if s["errors"]:
        txt += " (%d err)" % s["errors"]
    return txt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--cpu", required=True)
    ap.add_argument("--out", required=True, help="path prefix for .json .csv .png .txt")
    ap.add_argument("--meta", action="append", default=[])
    a = ap.parse_args()
    order, vals, meta = load(a.raw, a.cpu)
    for kv in a.meta:
        k, _, v = kv.partition("=")
        meta[k] = v
    limits = {}
    rows = []
    for wl, metric in order:
        if ("limit" in [k[2] for k in vals if k[0] == wl and k[1] == metric]):
            limits[wl] = summary(vals[(wl, metric, "limit")])["median"]
    derive_single_push(order, vals, limits)
    derive_disk16(order, vals, limits)
    for wl, metric in order:
        if wl in limits:
            continue
        if wl.startswith("manifest.") and ".any." in wl:
            continue  # nginx-only baseline lines; shown beside berth's
        row = {"workload": wl, "metric": metric}
        for s in SERVERS:
            row[s] = summary(vals.get((wl, metric, s), []))
        m = re.match(r"manifest\.(GET|HEAD)\.(tag|digest)\.(h1|h2)\.(c\d+)$", wl)
        if m:
            row["nginx"] = summary(vals.get(("manifest.%s.any.%s.%s" % (m.group(1), m.group(3), m.group(4)),
                                             metric, "nginx"), []))
        b, d = row["berth"]["median"], row["distribution"]["median"]
        row["ratio_basis"] = "distribution"
        if wl.startswith("upload.mono.") and d is None:
            # distribution 2.8 ignores POST ?digest=; its one-go upload is POST + PUT
            alt = summary(vals.get((wl.replace(".mono.", ".postput."), metric, "distribution"), []))
            if alt["median"] is not None:
                d = alt["median"]
                row["ratio_basis"] = "distribution POST+PUT"
        row["ratio"] = b / d if (b is not None and d) else None
        row["lower_is_better"] = metric in LOWER_IS_BETTER
        row["targets"] = [{"target": x, "pass": p, "value": v}
                          for x, p, v in targets_for(wl, metric, row, vals, limits)]
        ps = [t["pass"] for t in row["targets"]]
        row["verdict"] = ("" if not ps else "FAIL" if False in ps else
                          "pass" if all(p is True for p in ps) else
                          "pass?" if True in ps else "n/a")
        rows.append(row)

    # ---------------------------------------------------------------- table
    lines = []
    lines.append("berth benchmark — %s" % ", ".join("%s=%s" % kv for kv in sorted(meta.items())))
    lines.append("physical limits: " + ", ".join("%s %s MB/s" % (k, fmt(v)) for k, v in limits.items()))
    lines.append("values: median [min–max] over rounds; ratio = berth/distribution; "
                 "nginx column = static files, same bytes")
    hdr = ("workload", "metric", "berth", "distribution", "ratio", "nginx", "targets", "")
    table = [hdr]
    for r in rows:
        tg = "; ".join("%s%s" % (t["target"], "" if t["pass"] is None else
                                 (" ✓" if t["pass"] else " ✗ (%s)" % fmt(t["value"])))
                       for t in r["targets"])
        table.append((r["workload"], r["metric"], cell(r["berth"]), cell(r["distribution"]),
                      (("%s×" % fmt(r["ratio"])) + ("ᵖ" if r["ratio_basis"] != "distribution" else ""))
                      if r["ratio"] is not None else "-",
                      cell(r["nginx"]) if r["nginx"]["n"] or r["nginx"]["errors"] else "",
                      tg, r["verdict"]))
    widths = [max(len(str(x[i])) for x in table) for i in range(len(hdr))]
    for i, t in enumerate(table):
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(t, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if any(r["ratio_basis"] != "distribution" and r["ratio"] is not None for r in rows):
        lines.append("ᵖ ratio against distribution's POST+PUT upload (it has no single-request POST ?digest=)")
    npass = sum(1 for r in rows if r["verdict"] == "pass")
    nfail = sum(1 for r in rows if r["verdict"] == "FAIL")
    nna = sum(1 for r in rows if r["verdict"] in ("n/a", "pass?"))
    lines.append("targets: %d pass, %d fail, %d not measurable" % (npass, nfail, nna))
    text = "\n".join(lines)
    print(text)
    open(a.out + ".txt", "w").write(text + "\n")

    # ---------------------------------------------------------------- json, csv
    json.dump({"meta": meta, "limits": limits, "rows": rows}, open(a.out + ".json", "w"),
              indent=1, ensure_ascii=False)
    with open(a.out + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["workload", "metric", "server", "median", "min", "max", "n", "errors", "status",
                    "ratio_berth_over_distribution", "targets", "verdict"])
        for r in rows:
            tg = "; ".join("%s=%s" % (t["target"], {True: "pass", False: "fail", None: "n/a"}[t["pass"]])
                           for t in r["targets"])
            for s in SERVERS:
                x = r[s]
                if not x["n"] and not x["errors"] and s == "nginx":
                    continue
                w.writerow([r["workload"], r["metric"], s, x["median"], x.get("min"), x.get("max"),
                            x["n"], x["errors"], x.get("status", "ok"),
                            r["ratio"], tg, r["verdict"]])
        for k, v in limits.items():
            w.writerow([k, "MB/s", "limit", v, "", "", 1, 0, "ok", "", "", ""])

    # ---------------------------------------------------------------- plot
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib missing: no plot)", file=sys.stderr)
        return
    pr = [r for r in rows if r["ratio"] is not None]
    skipped = [r["workload"] for r in rows if r["ratio"] is None]
    if not pr:
        print("(no ratio to plot)", file=sys.stderr)
        return
    h = max(4, 0.22 * len(pr) + 1.5)
    fig, ax = plt.subplots(figsize=(11, h))
    ys = list(range(len(pr)))[::-1]
    for y, r in zip(ys, pr):
        ratio = r["ratio"]
        tgt = None
        for t in r["targets"]:
            mm = re.match(r"([≥≤])(1/)?([\d.]+)× distribution|≤1/([\d.]+) of distribution", t["target"])
            if mm:
                if mm.group(4):
                    tgt = 1 / float(mm.group(4))
                else:
                    tgt = float(mm.group(3))
        if ratio is not None and ratio > 0:
            ok = r["verdict"] != "FAIL"
            color = "#2a9d3f" if ok else "#d1495b"
            if not r["targets"]:
                color = "#8a8a8a"
            ax.barh(y, ratio - 1 if ratio >= 1 else -(1 - ratio), left=1, color=color, height=0.7)
            ax.text(ratio, y, " %s×" % fmt(ratio), va="center", fontsize=6,
                    ha="left" if ratio >= 1 else "right")
        else:
            ax.text(1, y, " %s" % (r["berth"].get("status") if r["berth"]["median"] is None
                                    else r["distribution"].get("status", "n/a")),
                    va="center", fontsize=6, color="#555555")
        if tgt:
            ax.plot([tgt], [y], marker="|", markersize=9, color="black", mew=2)
    fig.text(0.01, 0.005, "green: every target of the line met; red: one missed (it may be the nginx, "
             "loopback or SHA-256 one, see the table); grey: no target", fontsize=7, color="#444444")
    ax.set_xscale("log")
    ax.axvline(1, color="#333333", lw=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(["%s [%s]" % (r["workload"], r["metric"]) for r in pr], fontsize=6)
    ax.set_xlabel("berth / distribution (log scale; | = target; lower is better for latency, "
                  "RSS, time, CPU)")
    ax.set_title("berth vs distribution %s — %s, %s round(s); %d line(s) without a ratio "
                 "(n/a or error) not shown" % (meta.get("distribution", ""), meta.get("mode", ""),
                                                meta.get("rounds", ""), len(set(skipped))), fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    lo = min([r["ratio"] for r in pr if r["ratio"]] + [0.05])
    hi = max([r["ratio"] for r in pr if r["ratio"]] + [100])
    ax.set_xlim(lo / 2, hi * 3)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(a.out + ".png", dpi=130)


if __name__ == "__main__":
    main()
