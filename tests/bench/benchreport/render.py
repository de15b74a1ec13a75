"""docs/benchmarks.md and its SVG plots (matplotlib, SVG backend) from the
results of one run."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

from .servers import KINDS, LABELS  # noqa: E402

COLORS = {"tincan": "#d62728", "socketio": "#1f77b4", "peerjs": "#2ca02c", "ws": "#7f7f7f",
          "ours": "#d62728", "coturn": "#1f77b4"}
matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 10, "svg.hashsalt": "tincan"})


def fmt(v, digits=2, unit=""):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}{unit}"


def ratio(a, b):
    if a is None or b is None or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / "benchmarks" / name, format="svg", metadata={"Date": None})
    plt.close(fig)
    return f"![{name}](benchmarks/{name})"


def latency_section(res, out):
    lat = res["latency"]
    if not lat:
        return ""
    s = res["settings"]
    md = [f"## Signaling: one-hop latency\n",
          f"{s['latency_clients']} WebSocket clients in rooms of 2-4, each sending ~150-byte signals "
          f"to the next peer in its room; one load client (`tincan-relay-bench`) for every server, "
          f"one server process at a time. Phases (`name:signals per second in all:seconds`): "
          f"`{s['latency_phases']}`. Latency is send to receive on the client's clock.\n"]
    phases = []
    for run in lat.values():
        for p in run["phases"]:
            if p not in phases:
                phases.append(p)
    for phase in phases:
        rows = []
        ours = lat.get("tincan", {}).get("phases", {}).get(phase, {})
        for kind in KINDS:
            p = lat.get(kind, {}).get("phases", {}).get(phase)
            if not p:
                continue
            rows.append([LABELS[kind], p["sent"], p["received"], p["lost"], fmt(p["p50_ms"], 3),
                         fmt(p["p99_ms"], 3), fmt(p["p999_ms"], 3), fmt(p["max_ms"], 2),
                         fmt(p["cpu_us_per_signal"], 1),
                         "" if kind == "tincan" else ratio(ours.get("p99_ms"), p["p99_ms"]),
                         "" if kind == "tincan" else ratio(ours.get("cpu_us_per_signal"),
                                                           p["cpu_us_per_signal"])])
        md.append(f"### {phase}\n")
        md.append(table(["server", "sent", "received", "lost", "p50 ms", "p99 ms", "p99.9 ms",
                         "max ms", "server CPU us/signal", "p99 Tincan/this",
                         "CPU Tincan/this"], rows))
        fig, ax = plt.subplots(figsize=(7, 4))
        for kind in KINDS:
            p = lat.get(kind, {}).get("phases", {}).get(phase)
            if p and p["cdf"]:
                xs = [max(c[0], 1e-3) for c in p["cdf"]]
                ax.plot(xs, [c[1] for c in p["cdf"]], label=LABELS[kind], color=COLORS[kind])
        ax.set_xscale("log")
        ax.set_xlabel("one-hop latency (ms, log scale)")
        ax.set_ylabel("fraction of signals")
        ax.set_title(f"One-hop signaling latency CDF, {phase} phase")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
        md.append(save(fig, out, f"latency-{phase}.svg") + "\n")
    return "\n".join(md)


def sweep_section(res, out):
    sweep = res["sweep"]
    if not sweep:
        return ""
    md = ["## Signaling: memory per connection and CPU per signal against N\n",
          f"For each N a fresh server, N clients connected and joined (rooms of 2-4), then one phase "
          f"`{res['settings']['sweep_phase']}` (the same total signal rate whatever N, so the CPU "
          f"per signal shows what idle connections cost). RSS per connection is the server's RSS "
          f"with everyone connected minus its RSS before the first connection, over N; CPU is the "
          f"server process's utime+stime over the phase, over the signals delivered.\n"]
    rows = []
    by = {(r["kind"], r["clients"]): r for r in sweep}
    ns = sorted({r["clients"] for r in sweep})
    for n in ns:
        ours = by.get(("tincan", n))
        ours_c = (ours or {}).get("connected") or {}
        ours_p = next(iter((ours or {}).get("phases", {}).values()), {})
        for kind in KINDS:
            r = by.get((kind, n))
            if not r:
                continue
            c = r.get("connected") or {}
            p = next(iter(r["phases"].values()), {})
            kib = c.get("rss_per_conn") and c["rss_per_conn"] / 1024
            ours_kib = ours_c.get("rss_per_conn") and ours_c["rss_per_conn"] / 1024
            rows.append([n, LABELS[kind], f"{c.get('ready', 0)}/{n}", fmt(c.get("connect_secs"), 1),
                         fmt(kib, 1), fmt(p.get("cpu_us_per_signal"), 1), fmt(p.get("p99_ms"), 3),
                         p.get("lost", "n/a"),
                         "" if kind == "tincan" else ratio(ours_kib, kib),
                         "" if kind == "tincan" else ratio(ours_p.get("cpu_us_per_signal"),
                                                           p.get("cpu_us_per_signal"))])
    md.append(table(["N", "server", "connected", "connect s", "RSS KiB/conn", "CPU us/signal",
                     "p99 ms", "lost", "RSS Tincan/this", "CPU Tincan/this"], rows))
    for key, name, label in [
        ("rss", "rss-per-connection.svg", "server RSS per open connection (KiB)"),
        ("cpu", "cpu-per-signal.svg", "server CPU per delivered signal (us)"),
        ("p99", "p99-vs-connections.svg", "one-hop p99 latency (ms)"),
    ]:
        fig, ax = plt.subplots(figsize=(7, 4))
        for kind in KINDS:
            xs, ys = [], []
            for n in ns:
                r = by.get((kind, n))
                if not r:
                    continue
                c = r.get("connected") or {}
                p = next(iter(r["phases"].values()), {})
                v = {"rss": c.get("rss_per_conn") and c["rss_per_conn"] / 1024,
                     "cpu": p.get("cpu_us_per_signal"), "p99": p.get("p99_ms")}[key]
                if v is not None:
                    xs.append(n)
                    ys.append(v)
            ax.plot(xs, ys, marker="o", label=LABELS[kind], color=COLORS[kind])
        ax.set_xscale("log")
        ax.set_xlabel("open WebSocket connections (N, log scale)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        md.append(save(fig, out, name) + "\n")
    return "\n".join(md)


def turn_section(res, out):
    cpu, sat = res["turn_cpu"], res["turn_saturation"]
    if not cpu and not sat:
        return ""
    md = ["## TURN relay: ours vs coturn\n",
          "`tests/bench/turn-vs-coturn.sh`: the same `turnutils_uclient` load (160-byte UDP "
          "packets echoed by one `turnutils_peer`, every packet relayed twice) against coturn and "
          "against `tincan-media-node`, both on loopback with TURN REST credentials. CPU is each "
          "server process's utime+stime during the load.\n"]

    def key(r):
        return (r["clients"], r["gap_ms"])

    if cpu:
        by = {(r["server"], key(r)): r for r in cpu}
        rows = []
        for k in sorted({key(r) for r in cpu}, key=lambda k: (k[0], -k[1])):
            o, c = by.get(("ours", k)), by.get(("coturn", k))
            for name, r in (("coturn", c), ("ours", o)):
                if r:
                    rows.append([int(k[0]), int(k[1]), name, int(r["pps"]), fmt(r["loss_pct"]),
                                 fmt(r["rtt_ms"]), fmt(r["cpu_s"]), fmt(r["cpu_us_per_pkt"], 1),
                                 ratio(o and o["cpu_us_per_pkt"], c and c["cpu_us_per_pkt"])
                                 if name == "ours" else ""])
        md.append("### CPU per relayed packet\n")
        md.append(table(["clients", "gap ms", "server", "relayed pkt/s", "loss %", "rtt ms",
                         "cpu s", "CPU us/pkt", "ours/coturn"], rows))
    if sat:
        md.append("### Saturation\n")
        md.append("The load steps up (more clients, shorter gaps between one client's packets; "
                  "`turnutils_uclient` paces itself, so the x axis is the relayed packet rate it "
                  "reached, both legs counted). Packets per core is relayed packets over server "
                  "CPU seconds. The saturation point is the highest rate before loss first exceeds "
                  "0.1 %. The load generator shares the 2 cores, so at the top steps it is part "
                  "of what saturates. Server socket drops: datagrams the kernel dropped on the "
                  "server's own UDP sockets (full receive buffers), the rest of the loss is on "
                  "the load client's or the echo peer's sockets.\n")
        rows, points, series = [], {}, {}
        for r in sat:
            if not r["sent"]:
                # turnutils_uclient got no allocation through: no figure, not a loss.
                rows.append([r["server"], int(r["clients"]), int(r["gap_ms"]), 0, "failed", "n/a",
                             "n/a", fmt(r["cpu_s"]), "n/a"])
                continue
            relayed = r["sent"] + r["recv"]
            per_core = relayed / r["cpu_s"] if r["cpu_s"] else float("nan")
            series.setdefault(r["server"], []).append((r["pps"], r["loss_pct"], per_core))
            drops = r.get("server_drops")
            rows.append([r["server"], int(r["clients"]), int(r["gap_ms"]), int(r["sent"]),
                         int(r["pps"]), fmt(r["loss_pct"]),
                         "n/a" if drops is None else int(drops), fmt(r["cpu_s"]), fmt(per_core, 0)])
        md.append(table(["server", "clients", "gap ms", "packets sent", "relayed pkt/s",
                         "loss %", "server socket drops", "server CPU s", "pkt per CPU-second"],
                        rows))
        for name, pts in series.items():
            ok = None
            for pps, loss, per_core in pts:
                if loss > 0.1:
                    break
                ok = (pps, per_core)
            points[name] = ok
        lines = []
        for name in ("ours", "coturn"):
            ok = points.get(name)
            if name not in series:
                continue
            never = all(loss <= 0.1 for _, loss, _ in series[name])
            lines.append(f"- **{name}**: " + (
                f"no loss up to {ok[0]:.0f} relayed pkt/s, {ok[1]:.0f} pkt per CPU-second"
                + (" (the ramp never reached loss)" if never else "")
                if ok else "loss from the first step"))
        o, c = points.get("ours"), points.get("coturn")
        if o and c:
            lines.append(f"- ours/coturn at the saturation point: relayed pkt/s {ratio(o[0], c[0])}, "
                         f"pkt per CPU-second {ratio(o[1], c[1])}")
        md.append("\n".join(lines) + "\n")
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
        for name, pts in series.items():
            pts = sorted(pts)
            a1.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name,
                    color=COLORS[name])
            a2.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=name,
                    color=COLORS[name])
        for ax, label in ((a1, "loss (%)"), (a2, "relayed packets per CPU-second")):
            ax.set_xscale("log")
            ax.set_xlabel("relayed pkt/s reached (log scale)")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        md.append(save(fig, out, "turn-saturation.svg") + "\n")
    return "\n".join(md)


def lambda_section(res, out):
    lam = res["lambda"]
    md = ["## Lambdas: binary size, cold init, first invoke\n",
          "From `tests/bench/lambda-cold-start.sh`: the deployed build (`cargo lambda build "
          "--release`, opt-level \"z\") and, started in turn with it on the same Runtime API "
          "emulator, the same build at opt-level 3; medians of fresh processes. DynamoDB is moto "
          "behind TLS (the first invocation's handshake included), MongoDB is SecantusDB. Goal: "
          "each binary <= 8 MB (10^6 bytes) without costing latency.\n"]
    every = lam.get("functions") or []
    fns = [f for f in every if f.get("label", "deployed") in ("deployed", "")]
    base = {f["name"]: f for f in every if f.get("label") == "opt-level 3"}
    if not fns:
        md.append(f"Not measured in this run: {lam.get('note') or 'no figures'}.\n")
        return "\n".join(md)

    def ratio(f, key):
        b = base.get(f["name"], {}).get(key)
        return fmt(f.get(key) / b, 2) if b and f.get(key) is not None else "-"

    rows = []
    for f in fns:
        size = f.get("binary_bytes")
        rows.append([f["name"], fmt(size and size / 1e6, 2), fmt(f.get("init_ms"), 1),
                     fmt(f.get("first_invoke_ms"), 1), fmt(f.get("warm_invoke_ms"), 1),
                     ratio(f, "binary_bytes"), ratio(f, "init_ms"), ratio(f, "first_invoke_ms"),
                     ratio(f, "warm_invoke_ms")])
    md.append(table(["function", "binary MB", "cold init ms", "first invoke ms",
                     "warm invoke ms", "size / opt 3", "init / opt 3", "first / opt 3",
                     "warm / opt 3"], rows))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    names = [f["name"] for f in fns]
    xs = range(len(fns))
    width = 0.4
    a1.bar([x - width / 2 for x in xs], [(f.get("binary_bytes") or 0) / 1e6 for f in fns], width,
           color="#d62728", label="deployed (z)")
    a1.bar([x + width / 2 for x in xs],
           [(base.get(n, {}).get("binary_bytes") or 0) / 1e6 for n in names], width,
           color="#7f7f7f", label="opt-level 3")
    a1.axhline(8, color="black", linestyle="--", linewidth=1, label="goal 8 MB")
    a1.set_xticks(list(xs), names)
    a1.set_ylabel("binary size (MB)")
    a1.legend(fontsize=7)
    a2.bar([x - width / 2 for x in xs], [f.get("init_ms") or 0 for f in fns], width,
           label="cold init")
    a2.bar([x + width / 2 for x in xs], [f.get("first_invoke_ms") or 0 for f in fns], width,
           label="first invoke")
    a2.set_xticks(list(xs), names)
    a2.set_ylabel("ms (deployed build)")
    a2.legend(fontsize=7)
    for ax in (a1, a2):
        ax.tick_params(axis="x", rotation=30)
        ax.grid(True, axis="y", alpha=0.3)
    md.append(save(fig, out, "lambdas.svg") + "\n")
    return "\n".join(md)


def login_section(res):
    lg = res.get("login")
    md = ["## Login latency\n"]
    if not lg:
        md.append("Not measured in this run.\n")
    elif "error" in lg:
        md.append(f"Not measured: {lg['error']}.\n")
    else:
        md.append(f"`POST /auth/login` on the local stack's HTTP API (embedded store), "
                  f"{lg['count']} logins one after another on one keep-alive connection; "
                  f"argon2id dominates, by design.\n")
        md.append(table(["logins", "failed", "p50 ms", "p99 ms", "max ms", "mean ms"],
                        [[lg["count"], lg["failures"], fmt(lg["p50_ms"], 1), fmt(lg["p99_ms"], 1),
                          fmt(lg["max_ms"], 1), fmt(lg["mean_ms"], 1)]]))
    return "\n".join(md)


def headline(res):
    lines = []
    lat = res["latency"]
    for phase in ("steady", "burst"):
        ours = lat.get("tincan", {}).get("phases", {}).get(phase)
        if not ours:
            continue
        parts = []
        for kind in KINDS[1:]:
            p = lat.get(kind, {}).get("phases", {}).get(phase)
            if p:
                parts.append(f"{LABELS[kind]} {ratio(ours['p99_ms'], p['p99_ms'])}")
        lines.append(f"- {phase} p99, Tincan/peer: " + ", ".join(parts))
    sweep = res["sweep"]
    if sweep:
        top = max(r["clients"] for r in sweep)
        by = {r["kind"]: r for r in sweep if r["clients"] == top}
        ours = by.get("tincan")
        if ours and ours.get("connected"):
            rp, cp = [], []
            for kind in KINDS[1:]:
                r = by.get(kind)
                if not (r and r.get("connected")):
                    continue
                rp.append(f"{LABELS[kind]} {ratio(ours['connected']['rss_per_conn'], r['connected']['rss_per_conn'])}")
                op = next(iter(ours["phases"].values()), {})
                pp = next(iter(r["phases"].values()), {})
                cp.append(f"{LABELS[kind]} {ratio(op.get('cpu_us_per_signal'), pp.get('cpu_us_per_signal'))}")
            lines.append(f"- RSS per connection at N={top}, Tincan/peer: " + ", ".join(rp))
            lines.append(f"- CPU per signal at N={top}, Tincan/peer: " + ", ".join(cp))
    return "\n".join(lines) + "\n" if lines else ""


HAND_RUN_MARKER = "<!-- Below: benches run by hand, kept as they are by tests/bench/report. -->"


def write(res, out: Path):
    (out / "benchmarks").mkdir(parents=True, exist_ok=True)
    m = res["machine"]
    mode = ("**Quick mode** (`REPORT_QUICK=1`: small N, short phases) — not the full run; "
            "figures are indicative only.\n\n" if m.get("quick") else "")
    if not m.get("complete", True):
        mode += ("**Partial run**: the run was stopped before its last steps; sections it did "
                 "not reach are missing or say \"not measured\".\n\n")
    facts = table(["what", "value"], [
        ["CPU", f"{m['cores']} cores, {m['cpu']}"], ["memory", f"{m['memory_gib']} GiB"],
        ["kernel", m["kernel"]],
        ["load average (1, 5, 15 min)", f"{' '.join(f'{x:.2f}' for x in m['load_start'])} at start, "
         f"{' '.join(f'{x:.2f}' for x in m.get('load_end', []))} at end"],
        ["toolchain", f"{m['rustc']}; node {m['node']}; coturn {m['coturn']}"],
        ["peers (npm)", ", ".join(f"{k} {v}" for k, v in m["npm"].items())],
        ["commit", m["commit"]], ["run", f"{m['date']}, {m.get('minutes', '?')} min"],
    ] + ([["re-run", (lambda r: f"{', '.join(r['steps'])} only (`REPORT_ONLY`), {r['date']}, commit "
            f"{r['commit']}, load {' '.join(f'{x:.2f}' for x in r['load_start'])} at start, "
            f"{' '.join(f'{x:.2f}' for x in r.get('load_end', []))} at end")(m["rerun"])]]
         if m.get("rerun") else []))
    parts = [
        "# Benchmarks\n",
        mode + "Written by `tests/bench/report` (see the README's Benchmarks section) in one "
        "run, every server started and stopped by the run itself, on a small shared machine: "
        "absolute figures are noisy, so read the ratios (Tincan over the other server; below "
        "1 is better for Tincan). Raw figures: [benchmarks/results.json](benchmarks/results.json).\n",
        "## Headline\n", headline(res),
        "## Machine\n", facts,
        latency_section(res, out), sweep_section(res, out), turn_section(res, out),
        lambda_section(res, out), login_section(res),
    ]
    # Sections of benches run by hand (soak, SFU vs Janus, audio quality)
    # follow the marker; a new report keeps them as they are.
    target = out / "benchmarks.md"
    kept = ""
    if target.exists():
        old = target.read_text()
        at = old.find(HAND_RUN_MARKER)
        if at >= 0:
            kept = old[at:]
    parts.append(kept or HAND_RUN_MARKER + "\n")
    target.write_text("\n".join(p for p in parts if p))
