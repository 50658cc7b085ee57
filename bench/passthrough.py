#!/usr/bin/env python3
"""Pass-through benchmark: omen vs vmagent, same workload, same run.

Drives rwload's reference harness (shared/rwload/bench/peers.py, imported from
the copy that bench/passthrough.sh builds) for both proxies, interleaved rep by
rep so that both see the same machine: `rwload send` -> proxy -> `rwload sink`,
with the same 50 % whitelist (6 of rwload's 12 families). The proxy is pinned
to CPU 1, generator and sink to CPU 0. Prints, per proxy, server CPU-seconds
per 1 M input samples, peak RSS and the samples the sink received, which must
equal the kept samples exactly (asserted), then the omen/vmagent ratio.

With --models, omen models every kept series (one rule matching all, outputs
[score], warm-up WARMUP samples) and the sink must also hold exactly the derived
samples the model emits: one `anomaly_score` sample per kept sample once the
series is past warm-up. A gauge emits from its (WARMUP+1)-th sample on; a counter
(the `_total` families: rwload sends no metadata, so omen goes by name) spends
its first sample priming the rate, so it emits from its (WARMUP+2)-th. rwload's
series are regular (15 s, no gaps, no stale markers, finite values), so nothing
else withholds a score. vmagent does no modeling; it is the same yardstick.

    python3 bench/passthrough.py --rwload BIN --peers PATH/peers.py --omen BIN [--repeat 3] [--models]
"""
import argparse
import importlib.util
import json
import os
import socket
import statistics
import sys

# Warm-up of the benchmark's rule. rwload's series are short (30 samples at 100k, 3 at 1m);
# a production series is past its warm-up, where every sample yields a score, so the
# benchmark measures that steady state with the smallest warm-up.
WARMUP = 1
MODELS_YAML = f"""models:
  rules:
    - match: '{{__name__=~".+"}}'
      outputs: [score]
      warmup: {WARMUP}
"""
COUNTER_SUFFIXES = ("_total", "_count", "_sum")


def load_peers(path):
    spec = importlib.util.spec_from_file_location("peers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def port_free(hostport):
    host, port = hostport.rsplit(":", 1)
    with socket.socket() as s:
        # As the servers do: a connection of the previous run in TIME_WAIT is no listener.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
            return True
        except OSError:
            return False


def expected_derived(by_name, keep, k):
    """Derived samples the sink must receive when every kept series is modeled: per series,
    one score per sample past warm-up (counters spend one more sample priming the rate)."""
    total = 0
    for name in keep:
        samples = by_name.get(name, 0)
        assert samples % k == 0, f"{name}: {samples} samples is not a whole number of series x {k}"
        primes = 1 if name.endswith(COUNTER_SUFFIXES) else 0
        total += samples // k * max(0, k - WARMUP - primes)
    return total


def check(run, derived=0):
    """The sink must hold exactly the kept samples plus `derived`; nothing may fail."""
    g, s = run["gen"], run["sink"]
    problems = []
    if g["errors"]:
        problems.append(f"generator saw {g['errors']} errors (first: {g['first_error']})")
    if g["ok_samples"] != g["sent_samples"]:
        problems.append(f"only {g['ok_samples']} of {g['sent_samples']} samples acknowledged")
    if s["kept_samples"] != s["expected"]:
        problems.append(f"sink has {s['kept_samples']} kept samples, expected {s['expected']}")
    if s["derived"] != derived:
        problems.append(f"sink has {s['derived']} derived/extra samples, expected {derived}")
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
    ap.add_argument("--models", action="store_true",
                    help="omen models every kept series (outputs: score); derived samples checked exactly")
    a = ap.parse_args()

    peers = load_peers(a.peers)
    peers.RW = os.path.abspath(a.rwload)
    peers.WORK = a.work
    peers.OMEN_BIN = os.path.abspath(a.omen)
    os.makedirs(a.work, exist_ok=True)
    peers.OMEN_MODELS = None
    if a.models:
        peers.OMEN_MODELS = os.path.join(a.work, "models.yaml")
        with open(peers.OMEN_MODELS, "w") as f:
            f.write(MODELS_YAML)
    # The per-family sample counts of the workload, for the expected derived samples.
    by_name = {}
    run_gen = peers.run_gen

    def run_gen_counting(url, series, k):
        cmd, res = run_gen(url, series, k)
        by_name.update(res["samples_per_pass_by_name"])
        return cmd, res

    peers.run_gen = run_gen_counting
    series, k = peers.WORKLOADS[a.workload]
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
            derived = expected_derived(by_name, peers.KEEP, k) if scenario == "omen" and a.models else 0
            r["sink"]["derived_expected"] = derived
            problems = check(r, derived)
            failures += [f"{scenario} rep {rep}: {p}" for p in problems]
            print(f"{scenario:8} rep {rep}: {r['srv_cpu_s_per_M']:.3f} CPU-s/M  "
                  f"peak RSS {r['rss_kb']['VmHWM'] / 1024:.0f} MiB  "
                  f"sink {r['sink']['samples']} samples (kept {r['sink']['kept_samples']}, expected {r['sink']['expected']}; "
                  f"derived {r['sink']['derived']}, expected {derived})  "
                  f"{r['gen']['samples_per_s']:.0f} samples/s  p99 {r['gen']['p99_ms']} ms"
                  + ("  FAILED: " + "; ".join(problems) if problems else ""), flush=True)

    med = statistics.median
    print()
    what = f"every kept series modeled (outputs [score], warm-up {WARMUP})" if a.models else "pass-through"
    print(f"{what}, {series} series x {k} samples, 50 % whitelist, median of {a.repeat} (same run, interleaved):")
    print(f"{'server':8} {'CPU-s per 1M input samples':>27} {'peak RSS MiB':>13} {'sink samples':>13} {'kept expected':>14} {'derived expected':>17}")
    cpm = {}
    for scenario in ("omen", "vmagent"):
        rs = runs[scenario]
        cpm[scenario] = med([r["srv_cpu_s_per_M"] for r in rs])
        print(f"{scenario:8} {cpm[scenario]:27.3f} {med([r['rss_kb']['VmHWM'] for r in rs]) / 1024:13.0f} "
              f"{med([r['sink']['samples'] for r in rs]):13.0f} {rs[0]['sink']['expected']:14} {rs[0]['sink']['derived_expected']:17}")
    ratio = cpm["omen"] / cpm["vmagent"]
    print(f"ratio omen/vmagent (CPU-s per 1M samples): {ratio:.2f}  (target <= 1.0)")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("sink received exactly the kept samples" + (" and the expected derived samples" if a.models else "")
          + " in every run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
