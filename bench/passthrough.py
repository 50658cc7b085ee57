#!/usr/bin/env python3
"""Pass-through benchmark: omen vs vmagent, same workload, same run.

Drives rwload's reference harness (shared/rwload/bench/peers.py, imported from
the copy that bench/passthrough.sh builds) for both proxies, interleaved rep by
rep so that both see the same machine: `rwload send` -> proxy -> `rwload sink`,
with the same 50 % whitelist (6 of rwload's 12 families). The proxy is pinned
to CPU 1, generator and sink to CPU 0. Prints, per proxy, server CPU-seconds
per 1 M input samples, peak RSS and the samples the sink received, which must
equal the kept samples exactly (asserted), then the omen/vmagent ratio.

    python3 bench/passthrough.py --rwload BIN --peers PATH/peers.py --omen BIN [--repeat 3]
"""
import argparse
import importlib.util
import json
import os
import socket
import statistics
import sys


def load_peers(path):
    spec = importlib.util.spec_from_file_location("peers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def port_free(hostport):
    host, port = hostport.rsplit(":", 1)
    with socket.socket() as s:
        try:
            s.bind((host, int(port)))
            return True
        except OSError:
            return False


def check(run):
    """The sink must hold exactly the kept samples; nothing may fail."""
    g, s = run["gen"], run["sink"]
    problems = []
    if g["errors"]:
        problems.append(f"generator saw {g['errors']} errors (first: {g['first_error']})")
    if g["ok_samples"] != g["sent_samples"]:
        problems.append(f"only {g['ok_samples']} of {g['sent_samples']} samples acknowledged")
    if s["kept_samples"] != s["expected"]:
        problems.append(f"sink has {s['kept_samples']} kept samples, expected {s['expected']}")
    if s["samples"] != s["expected"]:
        problems.append(f"sink has {s['samples']} samples in all, expected {s['expected']} (derived/extra: {s['derived']})")
    if s["bad_requests"]:
        problems.append(f"sink rejected {s['bad_requests']} requests")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rwload", required=True)
    ap.add_argument("--peers", required=True, help="path to rwload's bench/peers.py")
    ap.add_argument("--omen", required=True)
    ap.add_argument("--workload", default="100k", choices=["100k", "1m"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", default=os.environ.get("RWBENCH_DIR", "/tmp/omen-bench/runs"))
    a = ap.parse_args()

    peers = load_peers(a.peers)
    peers.RW = os.path.abspath(a.rwload)
    peers.WORK = a.work
    peers.OMEN_BIN = os.path.abspath(a.omen)
    peers.OMEN_MODELS = None
    os.makedirs(a.work, exist_ok=True)
    for hp in (peers.SINK_ADDR, "127.0.0.1:8429", "127.0.0.1:9202"):
        if not port_free(hp):
            sys.exit(f"passthrough: {hp} is in use; peers.py needs it (stop whatever listens there)")

    runs = {"vmagent": [], "omen": []}
    failures = []
    for rep in range(a.repeat):
        order = ["vmagent", "omen"] if rep % 2 == 0 else ["omen", "vmagent"]
        for scenario in order:
            r = peers.one_run(scenario, a.workload, rep)
            with open(os.path.join(a.work, "results.jsonl"), "a") as f:
                f.write(json.dumps(r) + "\n")
            runs[scenario].append(r)
            problems = check(r)
            failures += [f"{scenario} rep {rep}: {p}" for p in problems]
            print(f"{scenario:8} rep {rep}: {r['srv_cpu_s_per_M']:.3f} CPU-s/M  "
                  f"peak RSS {r['rss_kb']['VmHWM'] / 1024:.0f} MiB  "
                  f"sink {r['sink']['samples']} samples (kept {r['sink']['kept_samples']}, expected {r['sink']['expected']})  "
                  f"{r['gen']['samples_per_s']:.0f} samples/s  p99 {r['gen']['p99_ms']} ms"
                  + ("  FAILED: " + "; ".join(problems) if problems else ""), flush=True)

    med = statistics.median
    series, k = peers.WORKLOADS[a.workload]
    print()
    print(f"pass-through, {series} series x {k} samples, 50 % whitelist, median of {a.repeat} (same run, interleaved):")
    print(f"{'server':8} {'CPU-s per 1M input samples':>27} {'peak RSS MiB':>13} {'sink samples':>13} {'kept expected':>14}")
    cpm = {}
    for scenario in ("omen", "vmagent"):
        rs = runs[scenario]
        cpm[scenario] = med([r["srv_cpu_s_per_M"] for r in rs])
        print(f"{scenario:8} {cpm[scenario]:27.3f} {med([r['rss_kb']['VmHWM'] for r in rs]) / 1024:13.0f} "
              f"{med([r['sink']['samples'] for r in rs]):13.0f} {rs[0]['sink']['expected']:14}")
    ratio = cpm["omen"] / cpm["vmagent"]
    print(f"ratio omen/vmagent (CPU-s per 1M samples): {ratio:.2f}  (target <= 1.0)")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("sink received exactly the kept samples in every run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
