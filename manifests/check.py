#!/usr/bin/env python3
"""Policy and consistency checks on rendered stampede manifests.

The schema validator (kubernetes-validate --strict) proves every object is
well-formed; it cannot tell that a pod runs as root, that the agents got API
access, or that the agent dials a port nothing listens on. This script checks
those, on the output of `kustomize build`:

- pods: non-root, RuntimeDefault seccomp, no privilege escalation, read-only
  root filesystem, every capability dropped, requests and limits, pinned
  images, no host namespaces or host paths;
- RBAC: no wildcards, no binding to a role defined elsewhere (cluster-admin,
  edit, ...), cluster-wide access only to read nodes, nothing for the agents
  beyond `use` of an OpenShift SCC, and no API token in agent pods;
- references: every ConfigMap, Secret (and key), PVC and ServiceAccount a pod
  uses exists, or is one of the Secrets `controller certs` makes; every file
  path in container args and in the plan lies under a mounted volume and names
  a key that volume holds;
- wiring: Services and NetworkPolicies select pods and name their ports; the
  agents' --controller URL reaches the controller's gRPC port; the controller's
  --listen and --metrics-listen ports are its container ports;
- monitoring (check_monitoring.py): PodMonitor and PrometheusRule objects
  against schemas of the fields used, their ports and recorded series, and
  the Grafana dashboards' panels and variables.

Usage: check.py RENDERED.yaml [--external KIND/NAME ...]
       check.py --self-test RENDERED-BASE.yaml
Exit 0 when clean; 1 with one line per problem naming the object. The
self-test breaks a clean rendering of the base in each way above, one at a
time, and fails unless every break is reported.
"""

import copy

import sys
import tomllib
from urllib.parse import urlparse

import yaml

import check_monitoring

# Made by `controller certs --k8s-secret stampede-mtls` (docs/security.md),
# never committed: the keys each holds.
CERTS_SECRETS = {
    "stampede-mtls-controller": {"ca.pem", "controller.pem", "controller.key", "join-token"},
    "stampede-mtls-agent": {"ca.pem", "agent.pem", "agent.key", "join-token"},
}
WORKLOADS = {"Job", "DaemonSet", "Deployment", "Pod"}
BUILTIN_ROLES = {"cluster-admin", "admin", "edit", "view"}
ALLOWED_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


class Checker:
    def __init__(self, docs, external):
        self.docs = [d for d in docs if d]
        self.external = external
        self.problems = []
        self.by_kind = {}
        for d in self.docs:
            self.by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

    def fail(self, obj, msg):
        self.problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {msg}")

    def get(self, kind, name):
        return self.by_kind.get(kind, {}).get(name)

    # ---- pods -------------------------------------------------------------

    def pods(self):
        """(owner object, pod spec, pod labels) for every workload."""
        for d in self.docs:
            if d["kind"] not in WORKLOADS:
                continue
            if d["kind"] == "Pod":
                yield d, d["spec"], d["metadata"].get("labels", {})
            else:
                t = d["spec"]["template"]
                yield d, t["spec"], t.get("metadata", {}).get("labels", {})

    def check_pod_security(self, obj, spec):
        psc = spec.get("securityContext", {})
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                self.fail(obj, f"{key} is set")
        for v in spec.get("volumes", []):
            if "hostPath" in v:
                self.fail(obj, f"volume {v['name']} is a hostPath")
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            name = f"container {c['name']}"
            csc = c.get("securityContext", {})
            if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
                self.fail(obj, f"{name}: runAsNonRoot is not true")
            seccomp = csc.get("seccompProfile", psc.get("seccompProfile", {}))
            if seccomp.get("type") != "RuntimeDefault":
                self.fail(obj, f"{name}: seccompProfile is not RuntimeDefault")
            if csc.get("allowPrivilegeEscalation") is not False:
                self.fail(obj, f"{name}: allowPrivilegeEscalation is not false")
            if csc.get("readOnlyRootFilesystem") is not True:
                self.fail(obj, f"{name}: readOnlyRootFilesystem is not true")
            if csc.get("privileged"):
                self.fail(obj, f"{name}: privileged")
            caps = csc.get("capabilities", {})
            if "ALL" not in caps.get("drop", []):
                self.fail(obj, f"{name}: capabilities do not drop ALL")
            if caps.get("add"):
                self.fail(obj, f"{name}: adds capabilities {caps['add']}")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in res.get(part, {}):
                        self.fail(obj, f"{name}: no {part}.{what}")
            image = c.get("image", "")
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if not tag or tag == "latest":
                self.fail(obj, f"{name}: image {image!r} has no pinned tag")

    # ---- references ---------------------------------------------------------

    # volume type -> (kind, field naming the object, fields holding its keys)
    VOLUME_SOURCES = {
        "configMap": ("ConfigMap", "name", ("data", "binaryData")),
        "secret": ("Secret", "secretName", ("data", "stringData")),
        "persistentVolumeClaim": ("PersistentVolumeClaim", "claimName", ()),
    }

    def volume_keys(self, obj, vol):
        """Keys (file names) a configMap/secret volume holds, or None when any path goes."""
        for source, (kind, field, key_fields) in self.VOLUME_SOURCES.items():
            if source not in vol:
                continue
            name = vol[source][field]
            if kind == "Secret" and name in CERTS_SECRETS:
                return CERTS_SECRETS[name]
            found = self.get(kind, name)
            if found is None:
                if f"{kind}/{name}" not in self.external:
                    self.fail(obj, f"volume {vol['name']}: {kind} {name} does not exist")
                return None
            if not key_fields:
                return None
            return set().union(*(found.get(f, {}) for f in key_fields))
        return None

    def check_path(self, obj, container, mounts, path, what):
        """`path` must lie under a mount; under a configMap/secret mount it must name a key."""
        for mount_path, keys, vol in mounts:
            prefix = mount_path.rstrip("/") + "/"
            if path == mount_path or path.startswith(prefix):
                rest = path[len(prefix):]
                if keys is not None and rest and rest not in keys:
                    self.fail(
                        obj,
                        f"container {container}: {what} {path}: volume {vol} has no key "
                        f"{rest!r} (it holds {sorted(keys)})",
                    )
                return
        self.fail(obj, f"container {container}: {what} {path} is under no mounted volume")

    def check_references(self, obj, spec):
        sa = spec.get("serviceAccountName")
        if sa and self.get("ServiceAccount", sa) is None:
            self.fail(obj, f"ServiceAccount {sa} does not exist")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        keys = {n: self.volume_keys(obj, v) for n, v in volumes.items()}
        for c in spec.get("containers", []):
            mounts = []
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    self.fail(obj, f"container {c['name']}: mounts unknown volume {m['name']}")
                    continue
                mounts.append((m["mountPath"], keys[m["name"]], m["name"]))
            for arg in c.get("args", []):
                if isinstance(arg, str) and arg.startswith("/") and not arg.startswith("/usr/"):
                    self.check_path(obj, c["name"], mounts, arg, "argument")
            args = c.get("args", [])
            if args[:1] == ["run"] and len(args) > 1:
                self.check_plan(obj, c["name"], mounts, volumes, args[1])

    def check_plan(self, obj, container, mounts, volumes, plan_path):
        """The plan's own file paths must be mounted too."""
        text = None
        for mount_path, _, vol in mounts:
            cm = volumes[vol].get("configMap")
            if cm and plan_path.startswith(mount_path.rstrip("/") + "/"):
                data = (self.get("ConfigMap", cm["name"]) or {}).get("data", {})
                text = data.get(plan_path[len(mount_path.rstrip("/")) + 1:])
        if text is None:
            return  # reported by check_path already
        try:
            plan = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            self.fail(obj, f"container {container}: plan {plan_path}: {e}")
            return
        agents = plan.get("agents", {})
        paths = [("agents.tls." + k, v) for k, v in agents.get("tls", {}).items()]
        if "join_token_file" in agents:
            paths.append(("agents.join_token_file", agents["join_token_file"]))
        if "output_dir" in plan.get("run", {}):
            paths.append(("run.output_dir", plan["run"]["output_dir"]))
        for key, p in paths:
            if not p.startswith("/"):
                self.fail(obj, f"plan {plan_path}: {key} = {p!r} should be absolute in a pod")
            else:
                self.check_path(obj, container, mounts, p, f"plan {key}")

    # ---- wiring ---------------------------------------------------------------

    def selected(self, selector):
        """Pods whose labels contain `selector`."""
        return [
            (o, s)
            for o, s, labels in self.pods()
            if selector and all(labels.get(k) == v for k, v in selector.items())
        ]

    @staticmethod
    def ports(spec):
        return {
            p.get("name"): p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])
        }

    def check_services(self):
        for svc in self.by_kind.get("Service", {}).values():
            pods = self.selected(svc["spec"].get("selector", {}))
            if not pods:
                self.fail(svc, "selects no pod")
                continue
            for p in svc["spec"]["ports"]:
                target = p.get("targetPort", p["port"])
                for o, spec in pods:
                    ports = self.ports(spec)
                    ok = target in ports if isinstance(target, str) else target in ports.values()
                    if not ok:
                        self.fail(svc, f"port {p['port']}: {o['kind']}/{o['metadata']['name']} has no port {target}")

    def check_network_policies(self):
        for np in self.by_kind.get("NetworkPolicy", {}).values():
            pods = self.selected(np["spec"]["podSelector"].get("matchLabels", {}))
            if not pods:
                self.fail(np, "selects no pod")
                continue
            for rule in np["spec"].get("ingress", []):
                for p in rule.get("ports", []):
                    if isinstance(p["port"], str):
                        # A named port opens on the selected pods that have it.
                        if not any(p["port"] in self.ports(spec) for _, spec in pods) and not (
                            check_monitoring.runtime_port(np["spec"]["podSelector"], p["port"])
                        ):
                            self.fail(np, f"port {p['port']}: no selected pod has a port of that name")
                        continue
                    for o, spec in pods:
                        if p["port"] not in self.ports(spec).values():
                            self.fail(np, f"port {p['port']}: {o['kind']}/{o['metadata']['name']} does not listen on it")

    def flag(self, container, name):
        args = container.get("args", [])
        for i, a in enumerate(args[:-1]):
            if a == name:
                return args[i + 1]
        return None

    def check_listen_flags(self, obj, spec):
        for c in spec["containers"]:
            ports = self.ports(spec).values()
            for f in ("--listen", "--metrics-listen"):
                v = self.flag(c, f)
                if v is not None and int(v.rsplit(":", 1)[1]) not in ports:
                    self.fail(obj, f"container {c['name']}: {f} {v}: not a container port")
            url = self.flag(c, "--controller")
            if url is not None:
                self.check_controller_url(obj, c["name"], url)

    def check_controller_url(self, obj, container, url):
        u = urlparse(url)
        host = u.hostname.split(".")[0]
        svc = self.get("Service", host)
        if svc is None:
            self.fail(obj, f"container {container}: --controller {url}: no Service {host}")
            return
        match = [p for p in svc["spec"]["ports"] if p["port"] == u.port]
        if not match:
            self.fail(obj, f"container {container}: --controller {url}: Service {host} has no port {u.port}")
            return
        target = match[0].get("targetPort", u.port)
        for o, spec in self.selected(svc["spec"]["selector"]):
            listen = [self.flag(c, "--listen") for c in spec["containers"]]
            ports = self.ports(spec)
            port = ports.get(target) if isinstance(target, str) else target
            if not any(v and int(v.rsplit(":", 1)[1]) == port for v in listen):
                self.fail(obj, f"--controller {url} reaches port {port} of {o['metadata']['name']}, which does not --listen there")

    # ---- RBAC -------------------------------------------------------------------

    def check_rbac(self):
        for kind in ("Role", "ClusterRole"):
            for role in self.by_kind.get(kind, {}).values():
                for rule in role.get("rules", []):
                    for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                        if "*" in rule.get(field, []):
                            self.fail(role, f"wildcard in {field}")
                    verbs = set(rule.get("verbs", []))
                    if kind == "ClusterRole" and (
                        rule.get("resources") != ["nodes"] or not verbs <= {"get", "list", "watch"}
                    ):
                        self.fail(role, f"cluster-wide rule beyond reading nodes: {rule}")
                    if not verbs <= ALLOWED_VERBS and not self.is_scc_use(rule):
                        self.fail(role, f"verbs {sorted(verbs - ALLOWED_VERBS)}")
        for kind in ("RoleBinding", "ClusterRoleBinding"):
            for b in self.by_kind.get(kind, {}).values():
                ref = b["roleRef"]
                role = self.get(ref["kind"], ref["name"])
                if ref["name"] in BUILTIN_ROLES:
                    self.fail(b, f"binds the built-in {ref['kind']}/{ref['name']}")
                elif role is None:
                    self.fail(b, f"binds {ref['kind']}/{ref['name']}, which these manifests do not define")
                    continue
                agents = [s for s in b.get("subjects", []) if s["name"] == "stampede-agent"]
                if agents and not all(self.is_scc_use(r) for r in role.get("rules", [])):
                    self.fail(b, "gives the agents API access")
        sa = self.get("ServiceAccount", "stampede-agent")
        if sa is not None and sa.get("automountServiceAccountToken") is not False:
            self.fail(sa, "automountServiceAccountToken is not false")
        for o, spec, _ in self.pods():
            if spec.get("serviceAccountName") == "stampede-agent" and spec.get(
                "automountServiceAccountToken"
            ) is not False:
                self.fail(o, "agent pods must not mount an API token")

    @staticmethod
    def is_scc_use(rule):
        return (
            rule.get("apiGroups") == ["security.openshift.io"]
            and rule.get("resources") == ["securitycontextconstraints"]
            and rule.get("verbs") == ["use"]
            and bool(rule.get("resourceNames"))
        )

    def run(self):
        for obj, spec, _ in self.pods():
            self.check_pod_security(obj, spec)
            self.check_references(obj, spec)
            self.check_listen_flags(obj, spec)
        self.check_services()
        self.check_network_policies()
        self.check_rbac()
        check_monitoring.check(self)
        return self.problems


USAGE = "usage: check.py RENDERED.yaml [--external KIND/NAME ...] | check.py --self-test BASE.yaml"


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def container(docs, kind, name):
    return find(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def replace_arg(c, old, new):
    c["args"] = [new if a == old else a for a in c["args"]]


def set_plan(docs, old, new):
    data = find(docs, "ConfigMap", "stampede-plan")["data"]
    assert old in data["plan.toml"], old
    data["plan.toml"] = data["plan.toml"].replace(old, new)


# (what is broken, the change, text the report must contain)
BREAKS = [
    ("agent dials a wrong port",
     lambda d: replace_arg(container(d, "DaemonSet", "stampede-agent"),
                           "https://stampede-controller:7600", "https://stampede-controller:7601"),
     "has no port 7601"),
    ("controller listens elsewhere",
     lambda d: replace_arg(container(d, "Job", "stampede-controller"), "0.0.0.0:7600", "0.0.0.0:7700"),
     "--listen 0.0.0.0:7700"),
    ("writable root filesystem",
     lambda d: container(d, "DaemonSet", "stampede-agent")["securityContext"].update(
         readOnlyRootFilesystem=False),
     "readOnlyRootFilesystem"),
    ("a capability kept",
     lambda d: container(d, "Job", "stampede-controller")["securityContext"]["capabilities"].update(
         drop=["NET_RAW"]),
     "drop ALL"),
    ("no memory limit",
     lambda d: container(d, "DaemonSet", "stampede-agent")["resources"]["limits"].pop("memory"),
     "limits.memory"),
    ("unpinned image",
     lambda d: container(d, "DaemonSet", "stampede-agent").update(image="stampede/agent:latest"),
     "no pinned tag"),
    ("agent gets an API token",
     lambda d: find(d, "ServiceAccount", "stampede-agent").pop("automountServiceAccountToken"),
     "automountServiceAccountToken"),
    ("controller bound to cluster-admin",
     lambda d: find(d, "ClusterRoleBinding", "stampede-node-reader")["roleRef"].update(
         name="cluster-admin"),
     "built-in ClusterRole/cluster-admin"),
    ("cluster-wide secrets",
     lambda d: find(d, "ClusterRole", "stampede-node-reader")["rules"][0].update(
         resources=["nodes", "secrets"]),
     "beyond reading nodes"),
    ("wildcard verb",
     lambda d: find(d, "Role", "stampede-controller")["rules"][0].update(verbs=["*"]),
     "wildcard in verbs"),
    ("agent mounts a key its Secret lacks",
     lambda d: replace_arg(container(d, "DaemonSet", "stampede-agent"),
                           "/etc/stampede/tls/agent.key", "/etc/stampede/tls/controller.key"),
     "has no key 'controller.key'"),
    ("plan names an unmounted file",
     lambda d: set_plan(d, '"/etc/stampede/tls/ca.pem"', '"/etc/stampede/ca/ca.pem"'),
     "plan agents.tls.ca /etc/stampede/ca/ca.pem is under no mounted volume"),
    ("results outside the volume",
     lambda d: set_plan(d, 'output_dir = "/results"', 'output_dir = "results"'),
     "should be absolute"),
    ("missing ConfigMap",
     lambda d: find(d, "Job", "stampede-controller")["spec"]["template"]["spec"]["volumes"][0][
         "configMap"].update(name="stampede-plan-x"),
     "ConfigMap stampede-plan-x does not exist"),
    ("network policy on a closed port",
     lambda d: find(d, "NetworkPolicy", "stampede-agent")["spec"]["ingress"][0]["ports"][0].update(
         port=9465),
     "does not listen on it"),
    ("service selects nothing",
     lambda d: find(d, "Service", "stampede-controller")["spec"]["selector"].update(
         **{"app.kubernetes.io/component": "controler"}),
     "selects no pod"),
]


def self_test(path):
    with open(path, encoding="utf-8") as f:
        clean = [d for d in yaml.safe_load_all(f) if d]
    problems = Checker(copy.deepcopy(clean), set()).run()
    if problems:
        print(f"self-test: {path} is not clean to begin with:", *problems, sep="\n  ")
        return 1
    missed = 0
    breaks = list(BREAKS)
    if any(d["kind"] == "PrometheusRule" for d in clean):
        breaks += check_monitoring.BREAKS
    for what, change, expect in breaks:
        docs = copy.deepcopy(clean)
        change(docs)
        found = Checker(docs, set()).run()
        if not any(expect in p for p in found):
            missed += 1
            print(f"self-test: {what}: not reported (wanted {expect!r}, got {found})")
    print(f"check.py self-test: {len(breaks) - missed} passed, {missed} failed")
    return 1 if missed else 0


def main(argv):
    if len(argv) == 2 and argv[0] == "--self-test":
        return self_test(argv[1])
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    path, rest = argv[0], argv[1:]
    external = set()
    while rest:
        if rest[0] != "--external" or len(rest) < 2:
            print(f"check.py: unexpected argument {rest[0]!r}", file=sys.stderr)
            return 2
        external.add(rest[1])
        rest = rest[2:]
    with open(path, encoding="utf-8") as f:
        docs = list(yaml.safe_load_all(f))
    problems = Checker(docs, external).run()
    for p in problems:
        print(f"{path}: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
