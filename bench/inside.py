#!/usr/bin/python3
"""bench/inside.py - the writer's throughput inside and outside backups.

Reads a writer timeline (bench/writer.py --timeline: start in Unix us, then
commits per 10 ms) and backup intervals (bench/backup_loop.sh output lines
"<start us> <end us> <ms> <rc>"); prints one JSON line with the commit rate
while a backup was running, the rate while none was, and their ratio. The
first and last 0.5 s of the window are left out (start-up, shutdown).

Usage: inside.py TIMELINE LOOPFILE
"""
import json
import sys


def main():
    with open(sys.argv[1]) as f:
        lines = f.read().split()
    t0, counts = int(lines[0]), [int(x) for x in lines[1:]]
    iv = []
    with open(sys.argv[2]) as f:
        for line in f:
            p = line.split()
            if len(p) == 4:
                iv.append((int(p[0]), int(p[1])))
    ins = [0, 0]
    out = [0, 0]
    for i, c in enumerate(counts[50:-50], start=50):
        a, b = t0 + i * 10000, t0 + (i + 1) * 10000
        inside = any(s <= a and b <= e for s, e in iv)
        between = not any(s < b and a < e for s, e in iv)
        if inside:
            ins[0] += c
            ins[1] += 1
        elif between:
            out[0] += c
            out[1] += 1
    r_in = ins[0] / (ins[1] / 100.0) if ins[1] else 0.0
    r_out = out[0] / (out[1] / 100.0) if out[1] else 0.0
    print(json.dumps({"inside_per_s": round(r_in), "outside_per_s": round(r_out),
                      "inside_s": ins[1] / 100.0, "outside_s": out[1] / 100.0,
                      "ratio": round(r_in / r_out, 3) if r_out else None}))


if __name__ == "__main__":
    main()
