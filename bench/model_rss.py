#!/usr/bin/env python3
"""RSS growth per modeled series: 1 M series through omen with every series modeled,
against a baseline run of the same load with no model rule, in the same run.

    python3 bench/model_rss.py --rwload BIN --peers PATH/peers.py --omen BIN [--repeat 3]

Each repetition runs three omen processes in turn (fresh, pinned to CPU 1; generator
and sink on CPU 0), each fed `rwload send --series 1000000 --samples-per-series 3`:

  baseline   no model rule: route cache, buffers, allocator; everything but models
  models     every series modeled (one rule matching all, `_bucket` series included),
             the fit history store limited to FIT_SMALL: the model store alone
  models+fit the same with the default fit store (models.fit.history_bytes 256MiB)

Per run: VmRSS of omen before the load (idle) and after it (settled), growth = after -
idle. Bytes per modeled series = (growth(models) - growth(baseline)) / 1 M. The fit store
is bounded separately by models.fit.history_bytes, whatever the number of series; the
`models+fit` line shows its cost as omen accounts it (omen_fit_history_bytes) and as
measured. Both caches are sized so that nothing is evicted (max_series and
route_cache_size 2 M: 16 shards hold 1/16 of the bound each, and 1 M hashes do not
split evenly), and the script asserts omen_models = 1 M, no evictions, no errors.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import time

from passthrough import load_peers  # bench/ is the script directory, first on sys.path

SERIES, K = 1_000_000, 3
FIT_SMALL = "1MiB"
MODELS = """models:
  max_series: 2000000
  rules:
    - match: '{__name__=~".+"}'
      histogram_buckets: true
"""


def config(variant):
    c = "server:\n  listen: 127.0.0.1:9202\n"
    c += f"downstream:\n  url: http://{peers.SINK_ADDR}/api/v1/write\n"
    c += "route_cache_size: 2000000\n"
    if variant == "models":
        c += MODELS + f"  fit:\n    history_bytes: {FIT_SMALL}\n"
    elif variant == "models+fit":
        c += MODELS
    return c


def one_run(variant, rep, omen):
    d = os.path.join(peers.WORK, f"model-rss-{variant.replace('+', '-')}-{rep}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "omen.yaml"), "w") as f:
        f.write(config(variant))
    servers = []
    try:
        servers.append(peers.start_sink(peers.GEN_CPU, d))
        srv = peers.Server("omen", ["taskset", "-c", peers.SRV_CPU, omen, "serve", "--config", "omen.yaml"], d)
        servers.append(srv)
        peers.wait_ready("http://127.0.0.1:9202/-/ready")
        time.sleep(1.0)
        idle = peers.mem_kb(srv.pid)["VmRSS"]
        _, res = peers.run_gen("http://127.0.0.1:9202/api/v1/write", SERIES, K)
        time.sleep(peers.SETTLE_S)
        rss = peers.mem_kb(srv.pid)
        m = "http://127.0.0.1:9202/metrics"
        metric = lambda name: peers.metric_sum(m, name) or 0.0
        out = {"variant": variant, "rep": rep, "idle_kb": idle, "after_kb": rss["VmRSS"], "hwm_kb": rss["VmHWM"],
               "models": metric("omen_models"), "evictions": metric("omen_model_evictions_total"),
               "fit_bytes": metric("omen_fit_history_bytes"), "fit_series": metric("omen_fit_history_series"),
               "errors": res["errors"], "ok_samples": res["ok_samples"], "sent_samples": res["sent_samples"],
               "sink_samples": peers.sink_stats()["samples"]}
        out["growth_kb"] = out["after_kb"] - out["idle_kb"]
        return out
    finally:
        for s in reversed(servers):
            s.stop()


def check(r):
    problems = []
    if r["errors"] or r["ok_samples"] != r["sent_samples"]:
        problems.append(f"generator: {r['ok_samples']} of {r['sent_samples']} acknowledged, errors {r['errors']}")
    if r["sink_samples"] != SERIES * K:
        problems.append(f"sink has {r['sink_samples']} samples, expected {SERIES * K}")
    want = 0 if r["variant"] == "baseline" else SERIES
    if r["models"] != want or r["evictions"]:
        problems.append(f"omen_models {r['models']:.0f} (expected {want}), evictions {r['evictions']:.0f}")
    return problems


def main():
    global peers
    ap = argparse.ArgumentParser()
    ap.add_argument("--rwload", required=True)
    ap.add_argument("--peers", required=True, help="path to rwload's bench/peers.py")
    ap.add_argument("--omen", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", default=os.environ.get("RWBENCH_DIR", "/tmp/omen-bench/runs"))
    a = ap.parse_args()
    peers = load_peers(a.peers)
    peers.RW = os.path.abspath(a.rwload)
    peers.WORK = a.work
    os.makedirs(a.work, exist_ok=True)
    omen = os.path.abspath(a.omen)

    variants = ["baseline", "models", "models+fit"]
    runs = {v: [] for v in variants}
    failures = []
    for rep in range(a.repeat):
        for v in (variants if rep % 2 == 0 else variants[::-1]):
            r = one_run(v, rep, omen)
            with open(os.path.join(a.work, "results.jsonl"), "a") as f:
                f.write(json.dumps(r) + "\n")
            runs[v].append(r)
            problems = check(r)
            failures += [f"{v} rep {rep}: {p}" for p in problems]
            print(f"{v:10} rep {rep}: RSS idle {r['idle_kb'] / 1024:.0f} MiB, after {r['after_kb'] / 1024:.0f} MiB "
                  f"(growth {r['growth_kb'] / 1024:.1f} MiB, peak {r['hwm_kb'] / 1024:.0f} MiB), "
                  f"models {r['models']:.0f}, fit histories {r['fit_series']:.0f} = {r['fit_bytes'] / 2**20:.1f} MiB accounted"
                  + ("  FAILED: " + "; ".join(problems) if problems else ""), flush=True)

    med = statistics.median
    growth = {v: med([r["growth_kb"] for r in runs[v]]) * 1024 for v in variants}
    fit_bytes = med([r["fit_bytes"] for r in runs["models+fit"]])
    per = (growth["models"] - growth["baseline"]) / SERIES
    per_fit = (growth["models+fit"] - growth["baseline"]) / SERIES
    print()
    print(f"1 M series x {K} samples, every series modeled, median of {a.repeat} (same run, interleaved):")
    print(f"  RSS growth: baseline {growth['baseline'] / 2**20:.1f} MiB, models {growth['models'] / 2**20:.1f} MiB, "
          f"models+fit {growth['models+fit'] / 2**20:.1f} MiB")
    print(f"  bytes per modeled series (model store, fit store {FIT_SMALL}): {per:.0f}  (target <= 512, aim 256)")
    print(f"  with the default fit store: {per_fit:.0f}; the fit store accounts {fit_bytes / 2**20:.1f} MiB "
          f"({fit_bytes / SERIES:.0f} B per series at 1 M, bounded by models.fit.history_bytes), "
          f"measured {(growth['models+fit'] - growth['models']) / 2**20:.1f} MiB")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
