#!/usr/bin/env python3
"""Cardinality explosion: N distinct new series through omen, memory bounded.

`rwload send` runs in rounds of R series, each round with the next
--series-offset, so every series omen sees is new: each one misses the route
cache, gets a model (one rule matches everything) and, once the caches are
full, evicts the least recently used entry of both. rwload's null sink is the
downstream. omen's RSS is sampled throughout; its peak is the kernel's VmHWM.

The bound is derived from the configuration, not measured:

  bound = baseline                       omen's RSS when ready, before any load
        + max_series  x MODEL_BYTES      models
        + route_cache x ROUTE_BYTES      route decisions
        + 2 x history_bytes              fit histories (models.fit.history_bytes;
                                         x2 for vector growth and index slack)
        + concurrency x 4 x batch x SAMPLE_BYTES
                                         requests in flight: compressed body,
                                         decoded body, downstream body, slack

MODEL_BYTES = 256: a model is a 152 B slot in its shard's slab {Model 128 B, key,
stamp, prev, next, rule} (a Vec: capacity grows by doubling, but pages not yet
touched are not resident), plus its index entry (u64 -> u32, 16 B + 1 control
byte at <= 7/8 load, up to x2 for power-of-two sizing, about 39 B): 191 B,
rounded up to 256 (bench/model_rss.sh measures 199 B per model).
ROUTE_BYTES = 128: an index entry {key u64, Cached {Route, stamp u32, link u32}}
(32 B + control byte, up to x2 and 7/8 load: about 75 B) plus a 16 B link in the
recency slab: about 91 B, rounded up to 128.
SAMPLE_BYTES = 512: rwload's decoded size is about 335 B per sample at 10
labels.

Fails (exit 1) if a request failed, the sink did not get every sample, the
model accounting does not add up (created = evicted + in memory + retired,
created = every series but histogram buckets, which get no model by default),
the route cache outgrew its size, or the peak RSS is over the bound.

    python3 bench/cardinality.py --rwload BIN --omen BIN [--series 10000000] [--round 500000]
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

MODEL_BYTES = 256
ROUTE_BYTES = 128
SAMPLE_BYTES = 512
MiB = 1024 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_ready(url, proc, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"cardinality: {what} exited ({proc.returncode})")
        try:
            if get(url, timeout=2)[0] == 200:
                return
        except Exception:
            pass
        time.sleep(0.2)
    sys.exit(f"cardinality: {what} not ready at {url}")


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def metric(text, name):
    total = None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total or 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rwload", required=True)
    ap.add_argument("--omen", required=True)
    ap.add_argument("--work", default="/tmp/omen-bench/cardinality")
    ap.add_argument("--series", type=int, default=10_000_000)
    ap.add_argument("--round", type=int, default=500_000)
    ap.add_argument("--max-series", type=int, default=100_000)
    ap.add_argument("--route-cache", type=int, default=200_000)
    ap.add_argument("--history-mib", type=int, default=16)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)

    sink_port, omen_port = free_port(), free_port()
    sink_log = open(os.path.join(a.work, "sink.log"), "w")
    sink = subprocess.Popen(
        [a.rwload, "sink", "--listen", f"127.0.0.1:{sink_port}", "--no-series"],
        stdout=sink_log, stderr=subprocess.STDOUT)
    cfg = os.path.join(a.work, "omen.yaml")
    with open(cfg, "w") as f:
        f.write(f"""server:
  listen: 127.0.0.1:{omen_port}
downstream:
  url: http://127.0.0.1:{sink_port}/api/v1/write
route_cache_size: {a.route_cache}
models:
  max_series: {a.max_series}
  fit: {{history_bytes: {a.history_mib}MiB}}
  rules:
    - match: '{{__name__=~".+"}}'
ui: {{enabled: false}}
""")
    omen_log = open(os.path.join(a.work, "omen.log"), "w")
    omen = subprocess.Popen([a.omen, "serve", "--config", cfg], stdout=omen_log, stderr=subprocess.STDOUT)
    procs = [omen, sink]
    try:
        wait_ready(f"http://127.0.0.1:{sink_port}/stats", sink, "rwload sink")
        wait_ready(f"http://127.0.0.1:{omen_port}/-/ready", omen, "omen")
        time.sleep(1)
        baseline = status_kb(omen.pid, "VmRSS") * 1024
        bound = (baseline + a.max_series * MODEL_BYTES + a.route_cache * ROUTE_BYTES
                 + 2 * a.history_mib * MiB + a.concurrency * 4 * a.batch * SAMPLE_BYTES)

        samples = []
        stop = threading.Event()

        def sample_rss():
            while not stop.is_set():
                try:
                    samples.append((time.time(), status_kb(omen.pid, "VmRSS")))
                except OSError:
                    return
                time.sleep(0.25)

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        started = time.time()
        sent = ok = buckets = 0
        failures = []
        rounds = (a.series + a.round - 1) // a.round
        for i in range(rounds):
            n = min(a.round, a.series - i * a.round)
            out = subprocess.run(
                [a.rwload, "send", "--url", f"http://127.0.0.1:{omen_port}/api/v1/write",
                 "--series", str(n), "--samples-per-series", "1", "--batch", str(a.batch),
                 "--concurrency", str(a.concurrency), "--series-offset", str(i * a.round)],
                capture_output=True, text=True)
            line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT_JSON ")), None)
            if out.returncode != 0 or line is None:
                sys.exit(f"cardinality: rwload send failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
            r = json.loads(line[len("RESULT_JSON "):])
            sent += r["sent_samples"]
            # Histogram buckets get no model (`histogram_buckets: false`, the default).
            buckets += sum(v for k, v in r["samples_per_pass_by_name"].items() if k.endswith("_bucket"))
            ok += r["ok_samples"]
            if r["errors"]:
                failures.append(f"round {i}: errors {r['errors']} (first: {r['first_error']})")
            status, _ = get(f"http://127.0.0.1:{omen_port}/-/ready")
            text = get(f"http://127.0.0.1:{omen_port}/metrics")[1]
            rss = status_kb(omen.pid, "VmRSS") * 1024
            print(f"round {i + 1:2}/{rounds}: {(i + 1) * a.round if i + 1 < rounds else a.series:>9} series so far, "
                  f"{r['samples_per_s']:>9.0f} samples/s, ready {status}, RSS {rss / MiB:6.1f} MiB, "
                  f"models {metric(text, 'omen_models'):.0f}, evictions {metric(text, 'omen_model_evictions_total'):.0f}, "
                  f"route cache {metric(text, 'omen_route_cache_entries'):.0f}", flush=True)
        elapsed = time.time() - started
        stop.set()
        sampler.join()

        text = get(f"http://127.0.0.1:{omen_port}/metrics")[1]
        peak = status_kb(omen.pid, "VmHWM") * 1024
        sink_stats = json.loads(get(f"http://127.0.0.1:{sink_port}/stats")[1])
        models = metric(text, "omen_models")
        evictions = metric(text, "omen_model_evictions_total")
        retired = metric(text, "omen_models_retired_total")
        routes = metric(text, "omen_route_cache_entries")
        if ok != sent or sent != a.series:
            failures.append(f"{ok} of {sent} samples acknowledged, {a.series} series sent")
        if sink_stats["samples"] != a.series or sink_stats["bad_requests"]:
            failures.append(f"sink has {sink_stats['samples']} samples (expected {a.series}), {sink_stats['bad_requests']} bad requests")
        created = a.series - buckets
        if evictions + models + retired != created:
            failures.append(f"models: {evictions:.0f} evicted + {models:.0f} in memory + {retired:.0f} retired != {created} created")
        if models > a.max_series:
            failures.append(f"{models:.0f} models in memory, max_series {a.max_series}")
        if routes > a.route_cache:
            failures.append(f"{routes:.0f} route decisions cached, route_cache_size {a.route_cache}")
        if peak > bound:
            failures.append(f"peak RSS {peak / MiB:.1f} MiB over the bound {bound / MiB:.1f} MiB")
        late = [kb for t, kb in samples if t > started + elapsed / 2]
        print()
        print(f"cardinality: {a.series} distinct new series in {rounds} rounds, {elapsed:.0f} s, "
              f"max_series {a.max_series}, route_cache_size {a.route_cache}, history_bytes {a.history_mib} MiB")
        print(f"  peak RSS (VmHWM)        {peak / MiB:8.1f} MiB")
        print(f"  bound                   {bound / MiB:8.1f} MiB = baseline {baseline / MiB:.1f}"
              f" + models {a.max_series * MODEL_BYTES / MiB:.1f} + routes {a.route_cache * ROUTE_BYTES / MiB:.1f}"
              f" + histories {2 * a.history_mib:.1f} + in flight {a.concurrency * 4 * a.batch * SAMPLE_BYTES / MiB:.1f}")
        if late:
            print(f"  RSS over the second half: {min(late) / 1024:.1f} .. {max(late) / 1024:.1f} MiB (flat = bounded)")
        print(f"  models created {created} (every series but {buckets} histogram buckets), in memory {models:.0f},"
              f" evicted {evictions:.0f}, retired {retired:.0f}; route cache {routes:.0f}")
        print(f"  sink samples {sink_stats['samples']}, acknowledged {ok} of {sent}")
        if failures:
            print("FAILED:\n  " + "\n  ".join(failures))
            return 1
        print("omen answered every request; peak RSS within the bound")
        return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
