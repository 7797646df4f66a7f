"""Checks of the monitoring component's objects, for check.py.

kubernetes-validate has no schema for the Prometheus Operator's kinds, so
PodMonitor and PrometheusRule objects are validated here against schemas of
the fields stampede uses (unknown fields refused), and their wiring is
checked: a PodMonitor's port is a port of the pods it selects, every rule is
either a recording or an alerting rule, and an alert compares a recorded
series. Each job of a plain scrape configuration (a ConfigMap key
prometheus.yml; Debian's promtool cannot parse kubernetes_sd_configs) must
keep a port of the pods it is meant for. Grafana dashboards (ConfigMaps labelled grafana_dashboard) must parse
as JSON, give every panel a unique id, a datasource and a query per target,
and use only the template variables they define.
"""

import json
import re

import jsonschema
import yaml

LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": LABELS},
}
SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": LABELS,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
DURATION = {"type": "string", "pattern": r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"}

PODMONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": SELECTOR,
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": DURATION,
                        },
                    },
                },
            },
        },
    },
}

RULE = {
    "type": "object",
    "required": ["expr"],
    "additionalProperties": False,
    "properties": {
        "record": {"type": "string", "pattern": r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
        "alert": {"type": "string", "pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$"},
        "expr": {"type": "string", "minLength": 1},
        "for": DURATION,
        "labels": LABELS,
        "annotations": LABELS,
    },
    "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
}
PROMETHEUSRULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "interval": DURATION,
                            "rules": {"type": "array", "minItems": 1, "items": RULE},
                        },
                    },
                }
            },
        },
    },
}
SCHEMAS = {"PodMonitor": PODMONITOR, "PrometheusRule": PROMETHEUSRULE}
# Pods `controller run` creates itself ([serving], docs/serving.md), absent
# from any rendering: their labels and named ports.
RUNTIME_PODS = [
    ({"app.kubernetes.io/name": "stampede", "app.kubernetes.io/component": "serving"}, {"http"}),
]
# Grafana's own variables.
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range", "datasource"}


def selects(selector, labels):
    """Whether a label selector (matchLabels and matchExpressions) selects `labels`."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        v, op = labels.get(e["key"]), e["operator"]
        if (op == "In" and v not in e["values"]) or (op == "NotIn" and v in e["values"]):
            return False
        if (op == "Exists" and v is None) or (op == "DoesNotExist" and v is not None):
            return False
    return True


def runtime_port(selector, port):
    """Whether `selector` selects pods `controller run` creates that have the named `port`."""
    return any(selects(selector, labels) and port in ports for labels, ports in RUNTIME_PODS)


def check(checker):
    """Run every monitoring check on the objects of `checker` (a check.Checker)."""
    for kind, schema in SCHEMAS.items():
        for obj in checker.by_kind.get(kind, {}).values():
            for e in jsonschema.Draft202012Validator(schema).iter_errors(obj):
                path = ".".join(str(p) for p in e.absolute_path) or "(top)"
                checker.fail(obj, f"schema: {path}: {e.message}")
    for pm in checker.by_kind.get("PodMonitor", {}).values():
        check_pod_monitor(checker, pm)
    for rule in checker.by_kind.get("PrometheusRule", {}).values():
        check_rules(checker, rule)
    for cm in checker.by_kind.get("ConfigMap", {}).values():
        if "prometheus.yml" in cm.get("data", {}):
            check_scrape_config(checker, cm, cm["data"]["prometheus.yml"])
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            for key, text in cm.get("data", {}).items():
                check_dashboard(lambda msg, key=key: checker.fail(cm, f"{key}: {msg}"), text)


def pod_meta_labels(labels, port, namespace):
    """The `__meta_kubernetes_*` labels Prometheus's pod discovery gives one container port."""
    meta = {f"__meta_kubernetes_pod_label_{re.sub('[^a-zA-Z0-9_]', '_', k)}": v for k, v in labels.items()}
    meta["__meta_kubernetes_pod_container_port_name"] = port
    meta["__meta_kubernetes_namespace"] = namespace
    return meta


def check_scrape_config(checker, cm, text):
    """Each job of a plain scrape configuration keeps at least one port of a
    pod of the rendering (or of the pods `controller run` creates), in a
    namespace it discovers."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        checker.fail(cm, f"prometheus.yml: not YAML: {e}")
        return
    targets = [
        (pod_meta_labels(labels, port, o["metadata"].get("namespace", "")), f"{o['kind']}/{o['metadata']['name']}")
        for o, spec, labels in checker.pods()
        for port in checker.ports(spec)
    ]
    targets += [
        (pod_meta_labels(labels, port, cm["metadata"]["namespace"]), "pods of [serving]")
        for labels, ports in RUNTIME_PODS
        for port in ports
    ]
    for job in config.get("scrape_configs", []):
        name = job.get("job_name", "?")
        sds = job.get("kubernetes_sd_configs", [])
        if not sds or any(sd.get("role") != "pod" for sd in sds):
            checker.fail(cm, f"prometheus.yml: job {name}: not a kubernetes_sd_configs pod job")
            continue
        namespaces = {n for sd in sds for n in sd.get("namespaces", {}).get("names", [])}
        kept = [
            who for meta, who in targets
            if meta["__meta_kubernetes_namespace"] in namespaces and all(
                re.fullmatch(r.get("regex", "(.*)"), r.get("separator", ";").join(
                    meta.get(l, "") for l in r.get("source_labels", [])))
                for r in job.get("relabel_configs", []) if r.get("action") == "keep"
            )
        ]
        if not kept:
            checker.fail(cm, f"prometheus.yml: job {name} keeps no pod's port")


def check_pod_monitor(checker, pm):
    spec = pm.get("spec", {})
    selector = spec.get("selector", {})
    pods = [(o, s) for o, s, labels in checker.pods() if selects(selector, labels)]
    ports = [ep.get("port") for ep in spec.get("podMetricsEndpoints", [])]
    if not pods:
        if not all(runtime_port(selector, p) for p in ports):
            checker.fail(pm, "selects no pod")
        return
    for ep in spec.get("podMetricsEndpoints", []):
        for o, s in pods:
            if ep.get("port") not in checker.ports(s):
                checker.fail(pm, f"port {ep.get('port')!r}: {o['kind']}/{o['metadata']['name']} has no such port")


def check_rules(checker, obj):
    recorded = {
        r["record"] for g in obj.get("spec", {}).get("groups", []) for r in g.get("rules", []) if "record" in r
    }
    for g in obj.get("spec", {}).get("groups", []):
        for r in g.get("rules", []):
            if "alert" not in r:
                continue
            compared = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", r.get("expr", "").strip())
            if not compared or compared.group(0) not in recorded:
                checker.fail(obj, f"alert {r['alert']}: compares no recorded series of this object")


def check_dashboard(fail, text):
    try:
        dash = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"not JSON: {e}")
        return
    defined = {v.get("name") for v in dash.get("templating", {}).get("list", [])} | BUILTIN_VARIABLES
    ids = {}
    for p in dash.get("panels", []):
        title = p.get("title", "?")
        if p.get("id") in ids:
            fail(f"panel {title!r}: id {p.get('id')} also used by {ids[p['id']]!r}")
        ids[p.get("id")] = title
        if "gridPos" not in p:
            fail(f"panel {title!r}: no gridPos")
        if p.get("type") == "row":
            continue
        if not p.get("datasource"):
            fail(f"panel {title!r}: no datasource")
        targets = p.get("targets") or []
        if not targets:
            fail(f"panel {title!r}: no query")
        for t in targets:
            expr = t.get("expr", "")
            if not expr.strip() or not t.get("refId"):
                fail(f"panel {title!r}: target {t.get('refId')!r} has no expr or refId")
            for var in re.findall(r"\$\{?(\w+)", expr):
                if var not in defined:
                    fail(f"panel {title!r}: query uses undefined variable ${var}")


def _find(docs, kind, name=None):
    return next(d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))


def _dashboard_edit(docs, change):
    cm = _find(docs, "ConfigMap", "stampede-grafana-dashboard")
    key = next(iter(cm["data"]))
    dash = json.loads(cm["data"][key])
    change(dash)
    cm["data"][key] = json.dumps(dash)


def _first_query_panel(dash):
    return next(p for p in dash["panels"] if p.get("type") != "row")


# (what is broken, the change, text the report must contain), for a rendering
# with the monitoring component.
BREAKS = [
    ("PodMonitor on a port the pods lack",
     lambda d: _find(d, "PodMonitor", "stampede-load")["spec"]["podMetricsEndpoints"][0].update(port="metricz"),
     "port 'metricz'"),
    ("PodMonitor with an unknown field",
     lambda d: _find(d, "PodMonitor", "stampede-load")["spec"].update(podMetricsEndpointz=[]),
     "Additional properties"),
    ("PodMonitor selecting nothing",
     lambda d: _find(d, "PodMonitor", "stampede-load")["spec"]["selector"]["matchExpressions"][1].update(
         values=["controler"]),
     "selects no pod"),
    ("NetworkPolicy opening a port no pod names",
     lambda d: _find(d, "NetworkPolicy", "stampede-prometheus")["spec"]["ingress"][0]["ports"][0].update(
         port="metricz"),
     "no selected pod has a port of that name"),
    ("scrape job keeping no pod",
     lambda d: _find(d, "ConfigMap", "stampede-prometheus-scrape")["data"].update(
         {"prometheus.yml": _find(d, "ConfigMap", "stampede-prometheus-scrape")["data"]["prometheus.yml"].replace(
             "(controller|agent);metrics", "(controller|agent);metricz")}),
     "job stampede-load keeps no pod's port"),
    ("scrape job in another namespace",
     lambda d: _find(d, "ConfigMap", "stampede-prometheus-scrape")["data"].update(
         {"prometheus.yml": _find(d, "ConfigMap", "stampede-prometheus-scrape")["data"]["prometheus.yml"].replace(
             "names: [stampede]", "names: [monitoring]")}),
     "keeps no pod's port"),
    ("rule both recording and alerting",
     lambda d: _find(d, "PrometheusRule")["spec"]["groups"][0]["rules"][0].update(alert="X"),
     "is valid under each of"),
    ("alert on an unrecorded series",
     lambda d: next(r for r in _find(d, "PrometheusRule")["spec"]["groups"][0]["rules"] if "alert" in r).update(
         expr="stampede:nothing > 1"),
     "compares no recorded series"),
    ("bad rule duration",
     lambda d: next(r for r in _find(d, "PrometheusRule")["spec"]["groups"][0]["rules"] if "for" in r).update(
         **{"for": "1 minute"}),
     "does not match"),
    ("dashboard panel ids repeat",
     lambda d: _dashboard_edit(d, lambda dash: [p.update(id=1) for p in dash["panels"][:3]]),
     "also used by"),
    ("dashboard panel without a query",
     lambda d: _dashboard_edit(d, lambda dash: _first_query_panel(dash)["targets"][0].update(expr="")),
     "has no expr"),
    ("dashboard panel without a datasource",
     lambda d: _dashboard_edit(d, lambda dash: _first_query_panel(dash).pop("datasource")),
     "no datasource"),
    ("dashboard query with an undefined variable",
     lambda d: _dashboard_edit(d, lambda dash: _first_query_panel(dash)["targets"][0].update(
         expr="up{job=~\"$jobb\"}")),
     "undefined variable $jobb"),
    ("dashboard not JSON",
     lambda d: _find(d, "ConfigMap", "stampede-grafana-dashboard")["data"].update(
         {"stampede-dashboard.json": "{"}),
     "not JSON"),
]


def split(rendered, k8s_out, rules_dir):
    """Write the objects kubernetes-validate has schemas for to `k8s_out`, and
    each PrometheusRule's spec (a Prometheus rule file) into `rules_dir`, for
    `promtool check rules`. Prints the rule files written."""
    import os
    import sys

    import yaml

    with open(rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    plain = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    with open(k8s_out, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(plain, f, sort_keys=False)
    for d in docs:
        if d["kind"] == "PrometheusRule":
            path = os.path.join(rules_dir, d["metadata"]["name"] + ".yaml")
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump(d["spec"], f, sort_keys=False)
            sys.stdout.write(path + "\n")


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 5 or sys.argv[1] != "split":
        sys.exit("usage: check_monitoring.py split RENDERED.yaml K8S-OUT.yaml RULES-DIR")
    split(*sys.argv[2:])
