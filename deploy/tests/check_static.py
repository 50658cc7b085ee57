#!/usr/bin/env python3
"""Static checks of deploy/: the artefacts are valid for the tools that consume
them and consistent with each other. Run by deploy/tests/run.sh (after
install.sh), from the repository root:

    .venv/bin/python deploy/tests/check_static.py [--omen target/release/omen]

Every check is a function named check_*; each one that fails prints why, and
the run ends with `deploy: N passed, N failed`. The data-returning checks
(dashboards and alert rules against a real Prometheus fed through omen) are the
Rust test tests/deploy_queries.rs.
"""

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SHARED = K8S / "shared"
GRAFANA = DEPLOY / "grafana"
RULES = K8S / "config" / "omen-rules.yml"
KUSTOMIZATIONS = [K8S, SHARED, GRAFANA]
VENV_BIN = ROOT / ".venv" / "bin"
OMEN_BIN = ROOT / "target" / "release" / "omen"


def run(cmd, **kw):
    """Runs cmd; returns stdout; raises with the whole output on a non-zero exit."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p.stdout


def load_yaml(path):
    return yaml.safe_load(Path(path).read_text())


def rendered(kdir):
    """The documents `kubectl kustomize kdir` renders."""
    return [d for d in yaml.safe_load_all(run(["kubectl", "kustomize", str(kdir)])) if d]


def find(docs, kind, name_prefix=""):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, f"expected one {kind} {name_prefix}*, found {len(found)}"
    return found[0]


def container(pod_spec, name):
    found = [c for c in pod_spec["containers"] if c["name"] == name]
    assert found, f"no container {name}"
    return found[0]


# ---------------------------------------------------------------- Kubernetes

def check_kustomizations_render_and_validate():
    """Each kustomization renders, and every rendered object validates strictly
    (unknown fields are errors) against the Kubernetes 1.37 schemas bundled with
    kubernetes-validate: no network involved."""
    for kdir in KUSTOMIZATIONS:
        out = run(["kubectl", "kustomize", str(kdir)])
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(out)
        try:
            log = run([str(VENV_BIN / "kubernetes-validate"), "--strict", "--no-warn", f.name])
        finally:
            os.unlink(f.name)
        n = log.count(" passed for resource ")
        docs = [d for d in yaml.safe_load_all(out) if d]
        assert n == len(docs) > 0, f"{kdir}: {n} of {len(docs)} objects validated:\n{log}"


def check_every_manifest_file_validates_and_is_used():
    """Every manifest file under deploy/kubernetes validates on its own and is
    listed in its directory's kustomization (no file that `apply -k` skips)."""
    for kdir in [K8S, SHARED]:
        listed = set(load_yaml(kdir / "kustomization.yaml").get("resources", []))
        files = sorted(p.name for p in kdir.glob("*.yaml") if p.name != "kustomization.yaml")
        assert sorted(listed) == files, f"{kdir}: kustomization lists {sorted(listed)}, directory has {files}"
        run([str(VENV_BIN / "kubernetes-validate"), "--strict", "--no-warn", *[str(kdir / f) for f in files]])


def check_validator_rejects_a_broken_manifest():
    """The schema check is not hollow: a misspelt field fails, and so does a wrong type."""
    base = find(rendered(K8S), "StatefulSet")

    def misspelt(c):
        c["readinessProbe"]["httpGet"]["pathh"] = "/-/ready"

    def wrong_type(c):
        c["ports"][0]["containerPort"] = "9201"

    for mutate, needle in [(misspelt, "pathh"), (wrong_type, "containerPort")]:
        sts = copy.deepcopy(base)
        mutate(container(sts["spec"]["template"]["spec"], "omen"))
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(sts, f)
        try:
            p = subprocess.run([str(VENV_BIN / "kubernetes-validate"), "--strict", f.name], capture_output=True, text=True)
        finally:
            os.unlink(f.name)
        assert p.returncode != 0 and needle in p.stdout + p.stderr, p.stdout + p.stderr


def check_sidecar_pod():
    """The StatefulSet runs Prometheus with omen beside it: omen's port is the one
    omen.yaml listens on and Prometheus writes to; probes hit /-/healthy and
    /-/ready there; both containers are non-root with a read-only root fs, no
    privilege escalation and no capabilities; resources are set; the config,
    secret and snapshot volumes are mounted where omen.yaml expects them."""
    docs = rendered(K8S)
    sts = find(docs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    omen = container(pod, "omen")
    prom = container(pod, "prometheus")
    omen_cfg = load_yaml(K8S / "config" / "omen.yaml")
    prom_cfg = load_yaml(K8S / "config" / "prometheus.yml")

    port = int(omen_cfg["server"]["listen"].rsplit(":", 1)[1])
    host = omen_cfg["server"]["listen"].rsplit(":", 1)[0]
    assert host in ("0.0.0.0", "[::]"), f"omen must listen on all interfaces for the kubelet's probes, not {host}"
    ports = {p["name"]: p["containerPort"] for p in omen["ports"]}
    assert ports == {"omen": port}, ports
    assert omen["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "omen"}
    assert omen["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "omen"}
    assert prom_cfg["remote_write"][0]["url"] == f"http://localhost:{port}/api/v1/write"
    omen_jobs = [j for j in prom_cfg["scrape_configs"] if j["job_name"] == "omen"]
    assert omen_jobs and omen_jobs[0]["static_configs"][0]["targets"] == [f"localhost:{port}"], "no scrape of omen's /metrics"

    for c in (omen, prom):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsUser"] != 0, c["name"]
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"], c["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True

    mounts = {m["name"]: m["mountPath"] for m in omen["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # --config points into the omen.yaml ConfigMap mount.
    cfg_path = Path(omen["args"][omen["args"].index("--config") + 1])
    cfg_vol = next(n for n, p in mounts.items() if Path(p) == cfg_path.parent)
    cm = find(docs, "ConfigMap", volumes[cfg_vol]["configMap"]["name"])
    assert cfg_path.name in cm["data"], f"{cfg_path.name} not in ConfigMap {cm['metadata']['name']}"
    assert yaml.safe_load(cm["data"][cfg_path.name]) == omen_cfg
    # The password file resolves (relative to omen.yaml) into the mounted Secret.
    pw = os.path.normpath(cfg_path.parent / omen_cfg["downstream"]["basic_auth"]["password_file"])
    sec_vol = next(n for n, p in mounts.items() if pw.startswith(p.rstrip("/") + "/"))
    secret = find(docs, "Secret", volumes[sec_vol]["secret"]["secretName"])
    assert Path(pw).name in secret["stringData"], f"{pw} is not a key of Secret {secret['metadata']['name']}"
    # Snapshots: /var/lib/omen (the image's VOLUME) on a persistent claim.
    assert mounts.get("omen-state") == "/var/lib/omen", mounts
    claims = [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]]
    assert "omen-state" in claims and "prometheus-data" in claims, claims
    assert Path(omen_cfg["persistence"]["path"]).parent == Path("/var/lib/omen"), "snapshots must go to the state volume"
    # Prometheus reads its config and the rules from its ConfigMap mount.
    pmounts = {m["name"]: m["mountPath"] for m in prom["volumeMounts"]}
    pcm = find(docs, "ConfigMap", volumes["prometheus-config"]["configMap"]["name"])
    assert "--config.file=" + pmounts["prometheus-config"] + "/prometheus.yml" in prom["args"]
    for rf in prom_cfg["rule_files"]:
        assert Path(rf).parent == Path(pmounts["prometheus-config"]) and Path(rf).name in pcm["data"], rf
    assert yaml.safe_load(pcm["data"]["omen-rules.yml"]) == load_yaml(RULES)
    # Shutdown: omen's drain fits in the pod's grace period.
    grace = omen_cfg["server"]["shutdown_grace"]
    assert grace.endswith("s") and int(grace[:-1]) < pod["terminationGracePeriodSeconds"], grace
    # The headless service matches the pod and names its ports.
    svc = find(docs, "Service")
    assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= {p["name"] for c in pod["containers"] for p in c["ports"]}


def check_shared_variant():
    """The shared Deployment: one replica with Recreate (README.md says why), the
    same probes and hardening, a Service and NetworkPolicy that select it, and
    senders that must present the token omen's server.auth checks."""
    docs = rendered(SHARED)
    dep = find(docs, "Deployment")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    pod = dep["spec"]["template"]["spec"]
    omen = container(pod, "omen")
    cfg = load_yaml(SHARED / "config" / "omen.yaml")
    port = int(cfg["server"]["listen"].rsplit(":", 1)[1])
    assert [p["containerPort"] for p in omen["ports"]] == [port]
    assert omen["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert omen["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert omen["securityContext"]["readOnlyRootFilesystem"] is True
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert find(docs, "Service")["spec"]["selector"].items() <= labels.items()
    assert find(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    rw = load_yaml(SHARED / "config" / "remote-write.yml")["remote_write"][0]
    assert rw["url"].endswith(f":{port}/api/v1/write") and "//omen." in rw["url"], rw["url"]
    assert rw["queue_config"] == load_yaml(ROOT / "config" / "prometheus.yml")["remote_write"][0]["queue_config"]
    # The same series are forwarded as by the sidecar, whose whitelist the
    # data test (tests/deploy_queries.rs) runs.
    assert cfg["whitelist"] == load_yaml(K8S / "config" / "omen.yaml")["whitelist"]
    # Reachable in-cluster: senders authenticate with the token omen checks.
    token = cfg["server"]["auth"]["bearer_token_file"]
    assert Path(token).name in find(docs, "Secret")["stringData"], token
    assert rw["authorization"]["credentials_file"], rw
    text = (SHARED / "README.md").read_text()
    assert "Trade-offs" in text and "replica" in text


def check_omen_configs_pass_check_config(omen_bin):
    """Both omen.yaml files pass `omen check-config` (the real binary), with the
    keys of their Secret laid out as the pod mounts them (relative paths)."""
    for kdir in [K8S, SHARED]:
        secret = find(rendered(kdir), "Secret")
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "config").mkdir()
            (Path(d) / "secrets").mkdir()
            cfg = Path(d) / "config" / "omen.yaml"
            shutil.copy(kdir / "config" / "omen.yaml", cfg)
            for key in secret["stringData"]:
                (Path(d) / "secrets" / key).write_text("s3cret\n")
            run([str(omen_bin), "check-config", str(cfg)])
            # And it is not a rubber stamp: without the secrets it fails.
            for key in secret["stringData"]:
                (Path(d) / "secrets" / key).unlink()
            p = subprocess.run([str(omen_bin), "check-config", str(cfg)], capture_output=True, text=True)
            assert p.returncode != 0 and "cannot read" in p.stdout + p.stderr, p.stdout + p.stderr


# ---------------------------------------------------------------- Prometheus

def promtool_check_config(cfg: dict, what: str):
    """`promtool check config` on cfg, with its rule_files (paths inside the pod's
    ConfigMap mount) pointed at the files in deploy/kubernetes/config, so that
    promtool checks those too."""
    cfg = copy.deepcopy(cfg)
    rules = []
    for rf in cfg.get("rule_files", []):
        local = K8S / "config" / Path(rf).name
        assert local.is_file(), f"{what}: rule file {rf} is not in deploy/kubernetes/config"
        rules.append(str(local))
    if rules:
        cfg["rule_files"] = rules
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "prometheus.yml"
        path.write_text(yaml.safe_dump(cfg))
        out = run(["promtool", "check", "config", str(path)])
        assert "SUCCESS" in out, f"{what}: {out}"
        if rules:
            assert re.search(r"SUCCESS: \d+ rules found", out), out


def check_prometheus_configs_pass_promtool():
    """config/prometheus.yml, the Prometheus ConfigMap's prometheus.yml and the
    shared variant's remote_write stanza pass `promtool check config`.

    Debian's promtool is built without Kubernetes service discovery, so the
    ConfigMap's `kubernetes_sd_configs` are checked here for their shape and
    replaced by an empty `file_sd_configs` for promtool, which then checks
    everything else (relabelling, remote_write, rules paths, alerting)."""
    out = run(["promtool", "check", "config", str(ROOT / "config" / "prometheus.yml")])
    assert "SUCCESS" in out, out
    run(["promtool", "check", "config", str(SHARED / "config" / "remote-write.yml")])
    cfg = load_yaml(K8S / "config" / "prometheus.yml")
    sd_jobs = 0
    for job in cfg["scrape_configs"]:
        for sd in job.pop("kubernetes_sd_configs", []):
            sd_jobs += 1
            assert set(sd) <= {"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"}, sd
            assert sd["role"] in {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}, sd
            job.setdefault("file_sd_configs", []).append({"files": ["/nonexistent/*.json"]})
    assert sd_jobs >= 1, "the ConfigMap should discover pods"
    promtool_check_config(cfg, "deploy/kubernetes/config/prometheus.yml")


def check_promtool_config_check_is_not_hollow():
    """promtool rejects a broken relabel regex in the same config."""
    cfg = load_yaml(K8S / "config" / "prometheus.yml")
    for job in cfg["scrape_configs"]:
        job.pop("kubernetes_sd_configs", None)
    cfg["scrape_configs"][0]["relabel_configs"] = [{"source_labels": ["a"], "regex": "(unclosed", "target_label": "b"}]
    try:
        promtool_check_config(cfg, "broken")
    except AssertionError as e:
        assert "(unclosed" in str(e) or "missing closing )" in str(e), e
        return
    raise AssertionError("promtool accepted an invalid regex")


def check_remote_write_matches_config_prometheus_yml():
    """The ConfigMap's remote_write is config/prometheus.yml's (the documented
    stanza): same URL, timeout, metadata and queue settings."""
    ours = load_yaml(K8S / "config" / "prometheus.yml")["remote_write"]
    theirs = load_yaml(ROOT / "config" / "prometheus.yml")["remote_write"]
    assert ours == theirs, f"deploy/kubernetes/config/prometheus.yml remote_write {ours} != config/prometheus.yml {theirs}"
    assert ours[0]["url"] == "http://localhost:9201/api/v1/write"
    # Prometheus drops 429s unless told otherwise; omen answers 503 instead.
    assert "retry_on_http_429" not in ours[0].get("queue_config", {})


def check_rules_pass_promtool():
    """The rules file passes `promtool check rules`, and its unit tests
    (deploy/tests/omen-rules.test.yml: each alert fires on bad data and stays
    silent on healthy data) pass `promtool test rules`."""
    out = run(["promtool", "check", "rules", str(RULES)])
    assert "SUCCESS" in out, out
    run(["promtool", "test", "rules", str(DEPLOY / "tests" / "omen-rules.test.yml")])


def check_every_alert_is_unit_tested():
    """Each alert in the rules file appears in a promtool unit test that expects it to fire."""
    alerts = {r["alert"] for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r}
    tests = load_yaml(DEPLOY / "tests" / "omen-rules.test.yml")["tests"]
    fired = {a["alertname"] for t in tests for a in t.get("alert_rule_test", []) if a.get("exp_alerts")}
    assert alerts == fired, f"alerts without a firing test: {sorted(alerts - fired)}; unknown: {sorted(fired - alerts)}"
    for g in load_yaml(RULES)["groups"]:
        for r in g["rules"]:
            assert r["labels"]["severity"] in {"critical", "warning", "info"}, r["alert"]
            assert r["annotations"].get("summary") and r["annotations"].get("description"), r["alert"]


# ---------------------------------------------------------------- Docker

def dockerfile_stages():
    """Parses deploy/Dockerfile into stages: [{'from': ..., 'name': ..., 'ins': [(INSTR, args)]}]."""
    text = (DEPLOY / "Dockerfile").read_text()
    logical, buf = [], ""
    for line in text.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    args, stages = {}, []
    for line in logical:
        instr, _, rest = line.strip().partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            image = re.sub(r"\$\{(\w+)\}", lambda v: args.get(v.group(1), v.group(0)), m.group(1))
            stages.append({"from": image, "name": m.group(2), "ins": []})
        elif not stages and instr == "ARG":
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip()
        else:
            stages[-1]["ins"].append((instr, rest.strip()))
    return stages


def check_dockerfile():
    """Multi-stage: rust:1-bookworm builds with `cargo build --release --locked`
    (the build the tests run); the final stage is distroless or bookworm-slim,
    copies exactly target/release/omen from the builder, runs as a non-root
    user, keeps state in the /var/lib/omen volume (owned by that user, so the
    root fs can be read-only), has a version label and no HEALTHCHECK, and its
    default command serves the config path the manifests mount."""
    stages = dockerfile_stages()
    assert len(stages) >= 2, "not multi-stage"
    build, final = stages[0], stages[-1]
    assert build["from"].startswith("rust:1-bookworm"), build["from"]
    assert re.match(r"(gcr\.io/distroless/cc-debian12|debian:bookworm-slim)", final["from"]), final["from"]
    runs = " ".join(a for i, a in build["ins"] if i == "RUN")
    assert re.search(r"cargo build --release --locked\b", runs), runs
    ins = final["ins"]
    copies = [a for i, a in ins if i == "COPY"]
    assert any(re.fullmatch(rf"--from={build['name']} /src/target/release/omen /usr/local/bin/omen", a) for a in copies), copies
    assert ("WORKDIR", "/src") in build["ins"]
    user = [a for i, a in ins if i == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root"), user
    uid = user[-1].split(":")[0]
    assert any(f"--chown={uid}:" in a and a.endswith(" /var/lib/omen") for a in copies), "state dir not owned by the runtime user"
    assert any(i == "VOLUME" and "/var/lib/omen" in a for i, a in ins)
    assert not any(i == "HEALTHCHECK" for s in stages for i, _ in s["ins"]), "no HEALTHCHECK: Kubernetes probes instead"
    labels = " ".join(a for i, a in ins if i == "LABEL")
    assert "org.opencontainers.image.version=" in labels, labels
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    assert ("ARG", f"VERSION={version}") in ins, f"ARG VERSION default should be Cargo.toml's {version}"
    entry = json.loads(next(a for i, a in ins if i == "ENTRYPOINT"))
    cmd = json.loads(next(a for i, a in ins if i == "CMD"))
    assert entry == ["/usr/local/bin/omen"], entry
    sts = find(rendered(K8S), "StatefulSet")
    assert cmd == container(sts["spec"]["template"]["spec"], "omen")["args"], (cmd, "!= the manifests' args")
    # The user matches the manifests' runAsUser, so the volume permissions agree.
    assert str(container(sts["spec"]["template"]["spec"], "omen")["securityContext"]["runAsUser"]) == uid


def check_docker_context_has_what_the_build_reads():
    """What the builder COPYs exists, covers every file the crate embeds
    (include_str!/include_bytes!) and everything build.rs compiles, and the
    dockerignore keeps target/ and .git out of the context."""
    build = dockerfile_stages()[0]
    sources = []
    for i, a in build["ins"]:
        if i == "COPY" and not a.startswith("--from"):
            sources += a.split()[:-1]
    for s in sources:
        assert (ROOT / s).exists(), f"COPY {s}: missing in the repository"
    copied = [ROOT / s for s in sources]
    for rs in (ROOT / "src").rglob("*.rs"):
        for m in re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"', rs.read_text()):
            target = (rs.parent / m.group(1)).resolve()
            assert any(target == c or c in target.parents for c in copied), f"{rs}: embeds {m.group(1)}, not copied into the image build"
    for m in re.finditer(r'"([\w./-]+\.proto)"', (ROOT / "build.rs").read_text()):
        assert (ROOT / "proto" / m.group(1)).exists()
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert "target" in ignore and ".git" in ignore, ignore


# ---------------------------------------------------------------- Grafana

DASHBOARDS = {"omen-anomalies.json": "omen — anomalies", "omen-health.json": "omen — health"}


def panels(d):
    for p in d["panels"]:
        yield p
        yield from p.get("panels", [])


def check_dashboards_structure():
    """Both dashboards: the titles the docs use, unique uids and panel ids, a
    `datasource` variable used by every panel and target, every $variable in a
    query defined, no overlapping panels, and the issue's panels present."""
    uids = set()
    for name, title in DASHBOARDS.items():
        d = json.loads((GRAFANA / "dashboards" / name).read_text())
        assert d["title"] == title, d["title"]
        assert d["uid"] not in uids and len(d["uid"]) <= 40
        uids.add(d["uid"])
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        known = set(variables) | {"__rate_interval", "__interval", "__range", "__range_s"}
        ids, cells = set(), set()
        for p in panels(d):
            assert p["id"] not in ids, f"{name}: duplicate panel id {p['id']}"
            ids.add(p["id"])
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24, f"{name}: {p['title']} wider than the grid"
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{name}: {p['title']} overlaps another panel"
                    cells.add((x, y))
            if p["type"] == "row":
                continue
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["targets"], f"{name}: {p['title']} has no query"
            assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}" and t["expr"].strip(), p["title"]
                used = set(re.findall(r"\$\{?(\w+)", t["expr"]))
                assert used <= known, f"{name}: {p['title']}: undefined variables {used - known}"
        for v in variables.values():
            if v["type"] == "query":
                assert re.fullmatch(r"label_values\((.+,\s*)?\w+\)", v["query"]["query"]), v["query"]
                assert set(re.findall(r"\$(\w+)", v["query"]["query"])) <= known
    health = json.loads((GRAFANA / "dashboards" / "omen-health.json").read_text())
    exprs = " ".join(t["expr"] for p in panels(health) for t in p.get("targets", []))
    for metric in ["omen_received_samples_total", "omen_forwarded_samples_total", "omen_dropped_samples_total",
                   "omen_downstream_request_duration_seconds_bucket", "omen_downstream_requests_total", "omen_models",
                   "omen_model_evictions_total", "omen_fit_backlog", "omen_snapshot_last_success_timestamp_seconds"]:
        assert metric in exprs, f"health dashboard lacks {metric}"
    anomalies = json.loads((GRAFANA / "dashboards" / "omen-anomalies.json").read_text())
    types = {p["type"] for p in panels(anomalies)}
    exprs = " ".join(t["expr"] for p in panels(anomalies) for t in p.get("targets", []))
    assert {"heatmap", "table", "timeseries"} <= types, types
    for needle in ["topk(", "anomaly_forecast_lower", "anomaly_forecast_upper", "by (namespace, job)"]:
        assert needle in exprs, f"anomalies dashboard lacks {needle}"


def check_dashboards_are_generated():
    """The committed JSON is what deploy/grafana/dashboards.py writes."""
    with tempfile.TemporaryDirectory() as d:
        run([sys.executable, str(GRAFANA / "dashboards.py"), d])
        for name in DASHBOARDS:
            fresh = (Path(d) / name).read_text()
            assert fresh == (GRAFANA / "dashboards" / name).read_text(), f"{name} differs: run python3 deploy/grafana/dashboards.py"


def check_grafana_provisioning():
    """The provisioning files are Grafana's format and point at the dashboards."""
    prov = load_yaml(GRAFANA / "provisioning" / "dashboards.yaml")
    assert prov["apiVersion"] == 1
    [p] = prov["providers"]
    assert p["type"] == "file" and p["options"]["path"].startswith("/")
    ds = load_yaml(GRAFANA / "provisioning" / "datasources.yaml")
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["type"] == "prometheus"
    svc = find(rendered(K8S), "Service")
    assert f"://{svc['metadata']['name']}.monitoring.svc.cluster.local:9090" in ds["datasources"][0]["url"]
    cm = find(rendered(GRAFANA), "ConfigMap")
    assert set(cm["data"]) == set(DASHBOARDS) and cm["metadata"]["labels"]["grafana_dashboard"] == "1"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--omen", default=str(OMEN_BIN), help="omen binary for check-config (the release build)")
    opts = ap.parse_args()
    checks = [(n, f) for n, f in globals().items() if n.startswith("check_") and callable(f)]
    passed = failed = 0
    for name, f in checks:
        try:
            if "omen_bin" in f.__code__.co_varnames[: f.__code__.co_argcount]:
                if not Path(opts.omen).is_file():
                    raise AssertionError(f"{opts.omen} missing: run `cargo build --release` first")
                f(opts.omen)
            else:
                f()
            passed += 1
            print(f"ok      {name}")
        except Exception:
            failed += 1
            print(f"FAILED  {name}\n{traceback.format_exc()}")
    print(f"deploy: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
