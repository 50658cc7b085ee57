#!/usr/bin/env python3
"""Generates deploy/grafana/dashboards/*.json (edit this, not the JSON):

    python3 deploy/grafana/dashboards.py deploy/grafana/dashboards

deploy/tests/check_static.py fails when the committed JSON differs from what
this writes."""
import json
DS = {"type": "prometheus", "uid": "${datasource}"}

def ds_var():
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}

def q_var(name, label, query, multi=False, all_=False, all_value=None):
    v = {"name": name, "label": label, "type": "query", "datasource": DS,
         "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
         "definition": query, "refresh": 2, "sort": 1, "multi": multi, "includeAll": all_,
         "current": {}, "hide": 0, "options": [], "regex": ""}
    if all_value is not None:
        v["allValue"] = all_value
    return v

class Board:
    def __init__(self):
        self.panels = []; self.id = 1; self.y = 0; self.x = 0; self.rowh = 0
    def add(self, typ, title, targets, w=12, h=8, desc="", **extra):
        if self.x + w > 24:
            self.x = 0; self.y += self.rowh; self.rowh = 0
        ts = []
        for i, t in enumerate(targets):
            if isinstance(t, str): t = {"expr": t}
            t = dict(t); t.setdefault("legendFormat", "__auto")
            ts.append({"datasource": DS, "refId": chr(65 + i), "editorMode": "code", "range": True, **t})
        p = {"id": self.id, "type": typ, "title": title, "description": desc, "datasource": DS,
             "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y}, "targets": ts}
        p.update(extra)
        self.panels.append(p); self.id += 1; self.x += w; self.rowh = max(self.rowh, h)
        return p
    def row(self, title):
        if self.x: self.x = 0; self.y += self.rowh; self.rowh = 0
        self.panels.append({"id": self.id, "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.id += 1; self.y += 1

def dashboard(uid, title, desc, board, variables, tags):
    return {"uid": uid, "title": title, "description": desc, "tags": tags, "editable": True,
            "schemaVersion": 39, "version": 1, "time": {"from": "now-6h", "to": "now"},
            "refresh": "1m", "timezone": "browser", "graphTooltip": 1,
            "annotations": {"list": []}, "links": [],
            "templating": {"list": variables}, "panels": board.panels}

def ts_field(unit="short", **custom):
    return {"defaults": {"unit": unit, "custom": custom}, "overrides": []}

# ---------------------------------------------------------------- anomalies
SEL = 'job=~"$job", namespace=~"$namespace"'
ONE = 'job=~"$job", namespace=~"$namespace", instance="$instance"'
COUNTER = '.+_total|.+_count|.+_sum|.+_bucket'
b = Board()
b.add("stat", "Series above 1 now", [f'sum(anomaly_score{{{SEL}}} > bool 1)'], w=6, h=5,
      desc="Series whose latest anomaly_score is above 1 (outside the prediction interval).",
      fieldConfig={"defaults": {"unit": "short", "thresholds": {"mode": "absolute", "steps": [
          {"color": "green", "value": None}, {"color": "orange", "value": 1}]}}, "overrides": []},
      options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background"})
b.add("stat", "Series scored", [f'count(anomaly_score{{{SEL}}})'], w=6, h=5,
      desc="Series for which omen emits an anomaly_score (past warm-up).",
      options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}})
b.add("timeseries", "Series above 1 by namespace and job", [
      {"expr": f'sum by (namespace, job) (anomaly_score{{{SEL}}} > bool 1)', "legendFormat": "{{namespace}}/{{job}}"}],
      w=12, h=5, desc="How many series are outside their prediction interval, per namespace and job.",
      fieldConfig=ts_field("short", drawStyle="line", fillOpacity=10, stacking={"mode": "normal"}))
b.add("table", "Top anomalous series (max score in the time range)", [
      {"expr": f'topk(20, max_over_time(anomaly_score{{{SEL}}}[$__range]))', "instant": True, "range": False,
       "format": "table", "legendFormat": ""}],
      w=12, h=10, desc="The 20 series with the highest anomaly_score in the selected range. Pick one with the metric and instance variables to see it against its forecast band.",
      options={"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]},
      transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True}, "renameByName": {"Value": "max score", "for": "metric"}}}])
b.add("heatmap", "Score distribution", [
      {"expr": f'sum(anomaly_score{{{SEL}}} <= bool {le})', "legendFormat": le, "format": "heatmap"}
      for le in ["0.5", "1", "2", "5", "10"]] + [
      {"expr": f'count(anomaly_score{{{SEL}}})', "legendFormat": "+Inf", "format": "heatmap"}],
      w=12, h=10, desc="How many series have a score in each band (0-0.5, 0.5-1, 1-2, 2-5, 5-10, above 10), over time; counted in Prometheus, so it scales to millions of series. Mass above 1 in many series at once suggests a shared cause.",
      options={"calculate": False, "rowsFrame": {"layout": "le"},
               "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential", "exponent": 0.5},
               "yAxis": {"unit": "short"}, "cellGap": 1, "tooltip": {"show": True, "yHistogram": True}})
b.row("One series: $metric on $instance")
b.add("timeseries", "$metric against its forecast band", [
      {"expr": f'{{__name__="$metric", __name__!~"{COUNTER}", {ONE}}} or rate({{__name__="$metric", __name__=~"{COUNTER}", {ONE}}}[$__rate_interval])',
       "legendFormat": "actual"},
      {"expr": f'anomaly_forecast{{for="$metric", {ONE}}}', "legendFormat": "forecast"},
      {"expr": f'anomaly_forecast_lower{{for="$metric", {ONE}}}', "legendFormat": "lower"},
      {"expr": f'anomaly_forecast_upper{{for="$metric", {ONE}}}', "legendFormat": "upper"}],
      w=24, h=10, desc="The series (as a per-second rate for counters, as omen models them) with omen's one-step-ahead forecast and prediction interval. Forecast and bounds exist only where the model rule's outputs include forecast and bounds.",
      fieldConfig={"defaults": {"unit": "short", "custom": {"drawStyle": "line", "fillOpacity": 0, "lineWidth": 1}}, "overrides": [
          {"matcher": {"id": "byFrameRefID", "options": "C"}, "properties": [
              {"id": "custom.fillBelowTo", "value": "upper"}, {"id": "custom.lineWidth", "value": 0}, {"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]},
          {"matcher": {"id": "byFrameRefID", "options": "D"}, "properties": [
              {"id": "custom.fillOpacity", "value": 15}, {"id": "custom.fillBelowTo", "value": "lower"}, {"id": "custom.lineWidth", "value": 0}, {"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]},
          {"matcher": {"id": "byFrameRefID", "options": "B"}, "properties": [
              {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}, {"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]},
          {"matcher": {"id": "byFrameRefID", "options": "A"}, "properties": [
              {"id": "color", "value": {"mode": "fixed", "fixedColor": "orange"}}, {"id": "custom.lineWidth", "value": 2}]}]})
b.add("timeseries", "anomaly_score of $metric", [
      {"expr": f'anomaly_score{{for="$metric", {ONE}}}', "legendFormat": "{{instance}}"}],
      w=24, h=7, desc="0 = exactly as forecast, 1 = at the edge of the prediction interval, above 1 = outside. The alert SeriesAnomalous fires after 5 minutes above 1.",
      fieldConfig={"defaults": {"unit": "short", "min": 0, "custom": {"drawStyle": "line", "thresholdsStyle": {"mode": "line+area"}},
                                "thresholds": {"mode": "absolute", "steps": [{"color": "transparent", "value": None}, {"color": "red", "value": 1}]}}, "overrides": []})
anomalies = dashboard("omen-anomalies", "omen — anomalies",
    "Anomaly scores and forecast bands that omen derives per series (anomaly_score{for=...}).", b,
    [ds_var(),
     q_var("job", "job", "label_values(anomaly_score, job)", multi=True, all_=True, all_value=".*"),
     q_var("namespace", "namespace", 'label_values(anomaly_score{job=~"$job"}, namespace)', multi=True, all_=True, all_value=".*"),
     q_var("metric", "metric", 'label_values(anomaly_score{job=~"$job", namespace=~"$namespace"}, for)'),
     q_var("instance", "instance", 'label_values(anomaly_score{for="$metric", job=~"$job", namespace=~"$namespace"}, instance)')],
    ["omen", "anomaly"])

# ---------------------------------------------------------------- health
S = 'job=~"$job", instance=~"$instance"'
R = '[$__rate_interval]'
h = Board()
stat = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
h.add("stat", "Version", [{"expr": f'omen_build_info{{{S}}}', "legendFormat": "{{instance}} {{version}}", "instant": True}], w=6, h=4,
      desc="omen_build_info: which omen runs where.", options={**stat, "textMode": "name"})
h.add("stat", "Up", [{"expr": f'up{{{S}}}', "legendFormat": "{{instance}}"}], w=6, h=4, desc="Prometheus can scrape omen's /metrics.",
      options=stat, fieldConfig={"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}]}, "overrides": []})
h.add("stat", "Models in memory", [f'sum(omen_models{{{S}}})'], w=6, h=4, desc="omen_models: per-series models held (bounded by models.max_series).", options=stat)
h.add("stat", "Write requests in flight", [f'sum(omen_requests_in_flight{{{S}}})'], w=6, h=4, desc="Beyond server.max_concurrent_requests omen answers 503.", options=stat)
h.row("Ingest and forward")
h.add("timeseries", "Samples per second", [
      {"expr": f'sum(rate(omen_received_samples_total{{{S}}}{R}))', "legendFormat": "received"},
      {"expr": f'sum(rate(omen_forwarded_samples_total{{{S}}}{R}))', "legendFormat": "forwarded"},
      {"expr": f'sum(rate(omen_derived_samples_total{{{S}}}{R}))', "legendFormat": "derived (scores, forecasts)"},
      {"expr": f'sum(rate(omen_dropped_samples_total{{{S}}}{R}))', "legendFormat": "dropped"}],
      desc="Received from Prometheus, forwarded downstream (originals), derived series added, and dropped (whitelist or invalid).", fieldConfig=ts_field("short"))
h.add("timeseries", "Dropped samples by reason", [
      {"expr": f'sum by (reason) (rate(omen_dropped_samples_total{{{S}}}{R}))', "legendFormat": "{{reason}}"}],
      desc="whitelist is by design; any other reason is data that breaks the data-model rules and is lost.", fieldConfig=ts_field("short", stacking={"mode": "normal"}, fillOpacity=20))
h.add("timeseries", "Write requests by answer", [
      {"expr": f'sum by (code) (rate(omen_requests_total{{{S}}}{R}))', "legendFormat": "{{code}}"}],
      desc="204 delivered; 400 bad data (dropped); 502 omen misconfigured for downstream; 503 downstream trouble or overload (Prometheus retries).", fieldConfig=ts_field("reqps", stacking={"mode": "normal"}, fillOpacity=20))
h.add("timeseries", "Refused requests by reason", [
      {"expr": f'sum by (reason) (rate(omen_bad_requests_total{{{S}}}{R}))', "legendFormat": "{{reason}}"}],
      desc="omen_bad_requests_total: 4xx answers by reason (unsupported media type, too large, undecodable, invalid series).", fieldConfig=ts_field("reqps"))
h.add("timeseries", "Write request latency", [
      {"expr": f'histogram_quantile(0.5, sum by (le) (rate(omen_request_duration_seconds_bucket{{{S}}}{R})))', "legendFormat": "p50"},
      {"expr": f'histogram_quantile(0.99, sum by (le) (rate(omen_request_duration_seconds_bucket{{{S}}}{R})))', "legendFormat": "p99"}],
      desc="Time to answer Prometheus, downstream round trip included.", fieldConfig=ts_field("s"))
h.add("timeseries", "Remote-write lag of the sending Prometheus", [
      {"expr": 'max by (namespace, instance) (prometheus_remote_storage_highest_timestamp_in_seconds) - on (namespace, instance) group_right max by (namespace, instance, url) (prometheus_remote_storage_queue_highest_sent_timestamp_seconds)', "legendFormat": "{{instance}} → {{url}}"}],
      desc="How far each Prometheus's remote-write queue is behind its newest sample. Grows while omen answers 503.", fieldConfig=ts_field("s"))
h.row("Downstream")
h.add("timeseries", "Downstream requests by answer", [
      {"expr": f'sum by (code) (rate(omen_downstream_requests_total{{{S}}}{R}))', "legendFormat": "{{code}}"}],
      desc="Downstream status codes; timeout and error mean no answer.", fieldConfig=ts_field("reqps", stacking={"mode": "normal"}, fillOpacity=20))
h.add("timeseries", "Downstream latency", [
      {"expr": f'histogram_quantile(0.5, sum by (le) (rate(omen_downstream_request_duration_seconds_bucket{{{S}}}{R})))', "legendFormat": "p50"},
      {"expr": f'histogram_quantile(0.99, sum by (le) (rate(omen_downstream_request_duration_seconds_bucket{{{S}}}{R})))', "legendFormat": "p99"}],
      desc="omen_downstream_request_duration_seconds.", fieldConfig=ts_field("s"))
h.row("Models")
h.add("timeseries", "Models", [
      {"expr": f'sum by (instance) (omen_models{{{S}}})', "legendFormat": "models {{instance}}"},
      {"expr": f'sum by (instance) (omen_route_cache_entries{{{S}}})', "legendFormat": "route cache {{instance}}"}],
      desc="Models in memory and cached route decisions.", fieldConfig=ts_field("short"))
h.add("timeseries", "Model evictions and retirements", [
      {"expr": f'sum(rate(omen_model_evictions_total{{{S}}}{R}))', "legendFormat": "evicted (max_series reached)"},
      {"expr": f'sum(rate(omen_models_retired_total{{{S}}}{R}))', "legendFormat": "retired (series went stale)"}],
      desc="Evictions mean models.max_series is too small: models are relearned.", fieldConfig=ts_field("short"))
h.add("timeseries", "Fit backlog and fit rate", [
      {"expr": f'sum(omen_fit_backlog{{{S}}})', "legendFormat": "backlog"},
      {"expr": f'sum(rate(omen_fits_total{{{S}}}{R}))', "legendFormat": "fits/s"}],
      desc="Series waiting for a background fit, and fits completed per second.", fieldConfig=ts_field("short"))
h.add("stat", "Snapshot age", [
      {"expr": f'time() - max by (instance) (omen_snapshot_last_success_timestamp_seconds{{{S}}} > 0)', "legendFormat": "{{instance}}"}],
      w=6, desc="Time since the last model snapshot was written (no value: none written yet, or persistence is off); the alert OmenSnapshotTooOld fires above 1h.",
      options=stat, fieldConfig={"defaults": {"unit": "s", "thresholds": {"mode": "absolute", "steps": [
          {"color": "green", "value": None}, {"color": "orange", "value": 1800}, {"color": "red", "value": 3600}]}}, "overrides": []})
h.add("stat", "Models restored at start", [
      {"expr": f'omen_snapshot_restored_series{{{S}}}', "legendFormat": "{{instance}}"},
      {"expr": f'omen_snapshot_restore_failures_total{{{S}}}', "legendFormat": "unreadable snapshot {{instance}}"}],
      w=6, desc="Models read back from the snapshot when omen started; an unreadable snapshot means the models were relearned.", options=stat)
h.add("timeseries", "Snapshots", [
      {"expr": f'sum by (instance) (omen_snapshot_series{{{S}}})', "legendFormat": "models in snapshot {{instance}}"},
      {"expr": f'sum by (instance) (omen_snapshot_bytes{{{S}}})', "legendFormat": "bytes {{instance}}"},
      {"expr": f'sum by (instance) (omen_snapshot_duration_seconds{{{S}}})', "legendFormat": "write time (s) {{instance}}"},
      {"expr": f'sum by (instance) (increase(omen_snapshot_failures_total{{{S}}}[$__range]))', "legendFormat": "failures {{instance}}"}],
      w=12, desc="The last snapshot: models, size on the volume, time to write; and failed writes in the range.",
      fieldConfig={"defaults": {"unit": "short"}, "overrides": [
          {"matcher": {"id": "byFrameRefID", "options": "B"}, "properties": [{"id": "unit", "value": "bytes"}, {"id": "custom.axisPlacement", "value": "right"}]},
          {"matcher": {"id": "byFrameRefID", "options": "C"}, "properties": [{"id": "unit", "value": "s"}]}]})
h.row("Process")
h.add("timeseries", "Memory", [
      {"expr": f'process_resident_memory_bytes{{{S}}}', "legendFormat": "{{instance}}"}],
      desc="Resident memory; compare with the container's memory limit.", fieldConfig=ts_field("bytes"))
h.add("timeseries", "CPU", [
      {"expr": f'rate(process_cpu_seconds_total{{{S}}}{R})', "legendFormat": "{{instance}}"}],
      desc="Cores used (write path plus background fitting).", fieldConfig=ts_field("short"))
h.add("timeseries", "Config reloads", [
      {"expr": f'sum by (result) (omen_config_reloads_total{{{S}}})', "legendFormat": "{{result}}"}],
      desc="SIGHUP reloads; a failure keeps the old config running.", fieldConfig=ts_field("short"))
health = dashboard("omen-health", "omen — health", "omen's own health: ingest, forward, downstream, models, snapshots.", h,
    [ds_var(),
     q_var("job", "job", "label_values(omen_build_info, job)", multi=True, all_=True, all_value=".*"),
     q_var("instance", "instance", 'label_values(omen_build_info{job=~"$job"}, instance)', multi=True, all_=True, all_value=".*")],
    ["omen"])

import os
import sys
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards")
for name, d in [("omen-anomalies.json", anomalies), ("omen-health.json", health)]:
    with open(f"{out}/{name}", "w") as f:
        json.dump(d, f, indent=2, ensure_ascii=False); f.write("\n")
