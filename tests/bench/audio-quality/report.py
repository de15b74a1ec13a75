#!/usr/bin/env python3
"""The audio-quality bench's summary, from its results.jsonl.

  report.py RESULTS PNG [LABEL]

Prints the table (markdown, one row per run, as docs/benchmarks.md has it), then one line per run
`mos PATH IMPAIRMENT SCORE` (and `concealed ...`), then the SFU/Janus ratios
per impairment (means over repeats), and draws PNG: PESQ-WB against random
loss, one line per path (bursty loss as open markers at its 10 %), and the
clean, jitter and cap cells side by side. LABEL (e.g. date and commit) goes
under the chart's title. Runs in the bench's venv (matplotlib).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

COLS = {"path": "path", "impairment": "impairment", "pesq_wb": "PESQ-WB", "concealed_pct": "concealed %",
        "inserted_pct": "inserted %", "removed_pct": "removed %", "jitter_buffer_ms": "jitter buffer ms",
        "mouth_to_ear_ms": "mouth-to-ear ms", "loss_seen_pct": "loss seen %", "fec_packets": "FEC packets",
        "codec": "codec"}
IMPAIRMENTS = {"clean": "clean", "loss5": "5 % random", "loss10": "10 % random", "loss20": "20 % random",
               "burst10": "10 % bursty (mean 3)", "jitter": "80 ± 30 ms jitter", "cap24": "24 kbit/s cap"}
LOSS = {"clean": 0, "loss5": 5, "loss10": 10, "loss20": 20}
OTHER = ["clean", "burst10", "jitter", "cap24"]
NAMES = {"mesh": "mesh (relayed)", "sfu": "Tincan SFU", "janus": "Janus VideoRoom"}


def means(rows: list[dict], key: str) -> dict[tuple[str, str], float]:
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if isinstance(r.get(key), (int, float)):
            acc[(r["path"], r["impairment"])].append(float(r[key]))
    return {k: sum(v) / len(v) for k, v in acc.items()}


def chart(rows: list[dict], png: str, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score = means(rows, "pesq_wb")
    paths = [p for p in NAMES if any(k[0] == p for k in score)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    for i, path in enumerate(paths):
        color = f"C{i}"
        pts = sorted((LOSS[imp], s) for (p, imp), s in score.items() if p == path and imp in LOSS)
        if pts:
            left.plot([x for x, _ in pts], [y for _, y in pts], "o-", color=color, label=NAMES[path])
        if (path, "burst10") in score:
            left.plot([10], [score[(path, "burst10")]], "o", mfc="none", ms=10, color=color)
        width = 0.8 / len(paths)
        xs = [j + (i - (len(paths) - 1) / 2) * width for j in range(len(OTHER))]
        right.bar(xs, [score.get((path, imp), float("nan")) for imp in OTHER], width, color=color, label=NAMES[path])
    left.plot([], [], "o", mfc="none", color="grey", label="10 % bursty (mean 3)")
    left.set(xlabel="random loss on the listener's leg (%)", ylabel="PESQ-WB (P.862.2)", ylim=(1, 4.7),
             xticks=[0, 5, 10, 20], title="against loss")
    left.axhline(3.0, color="grey", lw=0.8, ls=":")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.set(xticks=range(len(OTHER)), xticklabels=["clean", "bursty\n10 %", "jitter\n80 ± 30 ms", "cap\n24 kbit/s"],
              ylim=(1, 4.7), title="other impairments")
    right.axhline(3.0, color="grey", lw=0.8, ls=":")
    right.grid(axis="y", alpha=0.3)
    fig.suptitle("What a listener hears: PESQ-WB per path" + (f"\n{label}" if label else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(results: str, png: str, label: str = "") -> None:
    rows = [json.loads(line) for line in open(results) if line.strip()]
    print("| " + " | ".join(COLS.values()) + " |")
    print("|" + "---|" * len(COLS))
    for r in rows:
        cells = [NAMES.get(r["path"], r["path"]), IMPAIRMENTS.get(r["impairment"], r["impairment"])]
        cells += [r.get(c, r.get("error", "")) for c in list(COLS)[2:]]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print()
    for r in rows:
        print(f"concealed {r['path']} {r['impairment']} {r.get('concealed_pct', 'nan')}")
    for r in rows:
        print(f"mos {r['path']} {r['impairment']} {r.get('pesq_wb', 'nan')}")
    score, concealed = means(rows, "pesq_wb"), means(rows, "concealed_pct")
    imps = list(dict.fromkeys(r["impairment"] for r in rows))
    for imp in imps:
        s, j = score.get(("sfu", imp)), score.get(("janus", imp))
        if s and j:
            cs, cj = concealed.get(("sfu", imp)), concealed.get(("janus", imp))
            cr = f"{cs / cj:.2f}" if cs is not None and cj else "-"
            print(f"ratio sfu/janus {imp} pesq {s / j:.2f} ({s:.2f}/{j:.2f}) concealed {cr} ({cs}/{cj})")
    try:
        chart(rows, png, label)
        print(f"chart {png}")
    except Exception as err:  # a chart is a bonus: never lose the figures over it
        print(f"chart not drawn: {err}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(*sys.argv[1:4])
