"""The invariants every rendered overlay keeps, checked on every workload found in it (any
kind), so a new Deployment, StatefulSet or Job cannot slip through without probes, limits,
the restricted securityContext or a place behind the NetworkPolicies."""

import fnmatch
import re
import subprocess
from urllib.parse import urlparse

import pytest
import yaml

import k8s
from k8s import OVERLAYS, Endpoint, allowed, find, ingress_allows, name, one, selects, workloads

SERVICES = ["training", "projects", "metrics"]
# The read model: it answers behind the gateway and follows the services' change feeds.
INSIGHTS = "insights"
# What the gateway routes to.
BACKENDS = [*SERVICES, INSIGHTS]
COMPONENTS = ["gateway", *BACKENDS]
# Every gRPC path between qi's components, callee -> its callers; the NetworkPolicies allow
# exactly these: the gateway calls every backend, and the read model calls the services
# directly (not through the gateway) to follow their change feeds.
# The projects service follows the training service's feed (the HR sync's leavers).
CALLERS = {**{s: {"gateway", INSIGHTS} for s in SERVICES}, INSIGHTS: {"gateway"}}
CALLERS["training"] = {"gateway", INSIGHTS, "projects"}
# Variables that hold secrets: they may come only from a Secret, never from a literal or a ConfigMap.
SECRET_VARS = {"QI_DATABASE_URL", "QI_MIGRATION_DATABASE_URL", "QI_ACCESS_KEY", "QI_ACCESS_KEY_PREVIOUS", "QI_JWT_SECRET", "POSTGRES_PASSWORD"}
# Volume types the restricted Pod Security profile allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


# Found when the tests are collected, so each workload is a test case of its own, named after it.
WORKLOADS = [pytest.param(o, w.id, id=f"{o}:{w.id}") for o in OVERLAYS for w in workloads(k8s.render_overlay(o))]


def workload(rendered, overlay, wid):
    return next(w for w in workloads(rendered[overlay]) if w.id == wid)


def qi_image(docs):
    deploys = find(docs, "Deployment")
    images = {c["image"] for d in deploys for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "qi"}
    assert len(images) == 1, f"every qi container runs one image, found {images}"
    return images.pop()


def is_qi(overlay_docs, w):
    return w.containers(init=False)[0]["image"] == qi_image(overlay_docs)


# --- the invariants, as checks that list what a workload breaks ---------------------------


def pod_problems(docs: list[dict], w: k8s.Workload) -> list[str]:
    """What `w` (any kind of workload) breaks of the rules every pod here keeps."""
    problems = []

    def need(ok, what):
        if not ok:
            problems.append(what)

    pod = w.pod
    sc = pod.get("securityContext", {})
    need(sc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot: true")
    need(sc.get("runAsUser", 0) >= 10000, "pod securityContext.runAsUser: a high non-root uid")
    need(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccompProfile RuntimeDefault")
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        need(not pod.get(host), host)
    for v in pod.get("volumes", []):
        need(set(v) - {"name"} <= RESTRICTED_VOLUMES, f"volume {v['name']}: a kind the restricted profile refuses")
    need(pod.get("automountServiceAccountToken") is False, "automountServiceAccountToken: false")
    sa = pod.get("serviceAccountName")
    need(sa and sa != "default", "its own ServiceAccount")
    if sa and sa != "default":
        accounts = find(docs, "ServiceAccount", sa)
        need(accounts and accounts[0].get("automountServiceAccountToken") is False,
             f"ServiceAccount {sa} rendered, with automountServiceAccountToken: false")
    need(pod.get("enableServiceLinks") is False, "enableServiceLinks: false")
    for c in w.containers():
        n = c["name"]
        csc = c.get("securityContext", {})
        need(csc.get("allowPrivilegeEscalation") is False, f"{n}: allowPrivilegeEscalation: false")
        need(csc.get("readOnlyRootFilesystem") is True, f"{n}: readOnlyRootFilesystem: true")
        need(not csc.get("privileged"), f"{n}: not privileged")
        need(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{n}: capabilities drop ALL")
        need(not csc.get("capabilities", {}).get("add"), f"{n}: adds no capabilities")
        need(csc.get("runAsUser", 1) != 0, f"{n}: not root")
        for kind in ("requests", "limits"):
            for res in ("cpu", "memory"):
                need(res in c.get("resources", {}).get(kind, {}), f"{n}: resources.{kind}.{res}")
        image = c.get("image", "")
        tagged = "@sha256:" in image or ":" in image.rsplit("/", 1)[-1]
        need(tagged and not image.endswith(":latest"), f"{n}: an image with a fixed tag or digest")
        for var in c.get("env", []):
            if var["name"] in SECRET_VARS:
                need("secretKeyRef" in var.get("valueFrom", {}), f"{n}: {var['name']} from a Secret only")
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                cms = find(docs, "ConfigMap", src["configMapRef"]["name"])
                need(cms and not SECRET_VARS & set(cms[0].get("data", {})), f"{n}: no secrets in its ConfigMap")
    if pod.get("restartPolicy") in ("Never", "OnFailure"):
        # A run to completion (a Job's pod) has no probes to fail; it must still end.
        need(pod.get("activeDeadlineSeconds"), "activeDeadlineSeconds: a run that cannot hang for ever")
    else:
        for c in w.containers(init=False):
            need("livenessProbe" in c and "readinessProbe" in c, f"{c['name']}: liveness and readiness probes")
    need(w.namespace and any(
        p["metadata"].get("namespace") == w.namespace and p["spec"].get("podSelector") in ({}, None)
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress") and not p["spec"].get("egress")
        for p in find(docs, "NetworkPolicy")), "in a namespace with a default-deny NetworkPolicy")
    return problems


def deployment_problems(docs: list[dict], w: k8s.Workload) -> list[str]:
    """What a Deployment breaks of the rules for a stateless, highly available component."""
    problems = []

    def need(ok, what):
        if not ok:
            problems.append(what)

    d = w.doc
    need("replicas" not in d["spec"], "no replicas: the HorizontalPodAutoscaler owns the count")
    need(d["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable") == 0,
         "rollingUpdate.maxUnavailable: 0")
    hpas = [h for h in find(docs, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name(d)}]
    need(len(hpas) == 1, "one HorizontalPodAutoscaler")
    pdbs = [p for p in find(docs, "PodDisruptionBudget") if selects(p["spec"]["selector"], w.labels)]
    need(len(pdbs) == 1, "one PodDisruptionBudget selecting its pods")
    spread = w.pod.get("topologySpreadConstraints", [])
    keys = {t["topologyKey"] for t in spread if selects(t.get("labelSelector"), w.labels)}
    need({"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys, "topology spread over zones and nodes")
    # The selector must select only this Deployment's pods, or spread and budgets mix components.
    others = [o.id for o in workloads(docs) if o.id != w.id and selects(d["spec"]["selector"], o.labels)]
    need(not others, f"a selector that selects only its own pods (also {others})")
    need(w.pod.get("terminationGracePeriodSeconds") is not None, "terminationGracePeriodSeconds")
    return problems


def qi_problems(docs: list[dict], w: k8s.Workload) -> list[str]:
    """What a Deployment breaks of how qi runs: its role in args, migrations first, the port,
    probes and Service agreeing with QI_LISTEN, a grace period longer than the drain, and only
    variables qi reads."""
    problems = []

    def need(ok, what):
        if not ok:
            problems.append(what)

    containers = w.containers(init=False)
    if len(containers) != 1 or containers[0].get("image") != qi_image(docs):
        return ["one container, running the qi image (anything else needs rules of its own here)"]
    (main,) = containers
    component = w.labels.get("app.kubernetes.io/component")
    need(component in COMPONENTS, "an app.kubernetes.io/component label naming a qi component")
    need("command" not in main, "no command: the image's entrypoint is qi; args choose the role")
    need(main.get("args") == ["serve", component], f"args: [serve, {component}]")
    # Every component owns a schema (the gateway: its audit trail): migrations run first.
    inits = w.pod.get("initContainers", [])
    db = [e for e in main.get("env", []) if e["name"] == "QI_DATABASE_URL"]
    need(len(inits) == 1 and inits[0].get("args") == ["migrate", component], f"an init container: migrate {component}")
    need(all(i.get("image") == main["image"] for i in inits), "init containers run the same image")
    need(db and all(db == [e for e in i.get("env", []) if e["name"] == "QI_DATABASE_URL"] for i in inits),
         "one QI_DATABASE_URL, the same for the init container and the server")
    # The owner's URL migrates; the server runs as the runtime role and never holds it.
    need(all(any(e["name"] == "QI_MIGRATION_DATABASE_URL" for e in i.get("env", [])) for i in inits),
         "the init container migrates as the owner (QI_MIGRATION_DATABASE_URL)")
    need(not any(e["name"] == "QI_MIGRATION_DATABASE_URL" for e in main.get("env", [])),
         "the server has no QI_MIGRATION_DATABASE_URL (the owner's credentials)")
    known = k8s.env_vars_qi_reads()
    for c in w.containers():
        unknown = set(k8s.resolve_env(docs, c, lambda s, k, optional: "external")) - known
        need(not unknown, f"{c['name']}: only variables qi reads (not {sorted(unknown)})")
    env = k8s.resolve_env(docs, main, lambda s, k, optional: "external")
    listen = urlparse("tcp://" + env.get("QI_LISTEN", "127.0.0.1:50051"))
    need(listen.hostname == "0.0.0.0", "QI_LISTEN on 0.0.0.0 (the pod's interfaces)")
    ports = [p for p in main.get("ports", []) if p.get("name") == "grpc"]
    need(ports and ports[0]["containerPort"] == listen.port, "a container port named grpc, QI_LISTEN's port")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        need(main.get(probe, {}).get("grpc", {}).get("port") == listen.port,
             f"{probe}: native gRPC on QI_LISTEN's port")
    services = [s for s in find(docs, "Service") if selects({"matchLabels": s["spec"]["selector"]}, w.labels)]
    need(len(services) == 1, "one Service selecting its pods")
    if len(services) == 1:
        sp = services[0]["spec"]["ports"]
        need(len(sp) == 1 and sp[0]["name"] == "grpc" and k8s.container_port(w, sp[0]["targetPort"]) == listen.port,
             "the Service's one port is named grpc and targets QI_LISTEN's port")
    drain = int(env.get("QI_SHUTDOWN_DRAIN_DELAY_MS", 0))
    grace = int(env.get("QI_SHUTDOWN_GRACE_MS", 20000))
    need(drain >= 5000, "QI_SHUTDOWN_DRAIN_DELAY_MS >= 5000: endpoints drop the pod before it stops accepting")
    need(w.pod.get("terminationGracePeriodSeconds", 30) * 1000 > drain + grace,
         "terminationGracePeriodSeconds > drain delay + shutdown grace")
    return problems


# --- every workload, every Deployment ------------------------------------------------------

DEPLOYMENTS = [p for p in WORKLOADS if p.values[1].startswith("Deployment/")]


@pytest.mark.parametrize("overlay,wid", WORKLOADS)
def test_every_workload_is_restricted_limited_probed_and_fenced(rendered, overlay, wid):
    assert pod_problems(rendered[overlay], workload(rendered, overlay, wid)) == []


@pytest.mark.parametrize("overlay,wid", DEPLOYMENTS)
def test_every_deployment_rolls_without_downtime_and_is_autoscaled_budgeted_and_spread(rendered, overlay, wid):
    w = workload(rendered, overlay, wid)
    assert deployment_problems(rendered[overlay], w) == []
    (hpa,) = [h for h in find(rendered[overlay], "HorizontalPodAutoscaler")
              if h["spec"]["scaleTargetRef"]["name"] == name(w.doc)]
    assert hpa["spec"]["minReplicas"] >= (2 if overlay == "prod" else 1)


@pytest.mark.parametrize("overlay,wid", DEPLOYMENTS)
def test_every_deployment_runs_qi_as_the_binary_expects(rendered, overlay, wid):
    assert qi_problems(rendered[overlay], workload(rendered, overlay, wid)) == []


NAIVE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: reports, namespace: NS}
spec:
  replicas: 2
  selector: {matchLabels: {app: reports}}
  template:
    metadata: {labels: {app: reports}}
    spec:
      containers:
        - {name: reports, image: IMAGE, args: [serve, reports], env: [{name: QI_ACCESS_KEY, value: hunter2}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: NS}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: nightly, image: "busybox:latest"}]
"""


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_workload_added_without_the_invariants_is_caught(rendered, overlay):
    """The checks above are not vacuous: a plain Deployment and a CronJob, dropped into the
    rendered overlay, are found and fail every rule they ignore."""
    docs = rendered[overlay]
    ns = name(find(docs, "Namespace")[0])
    naive = list(yaml.safe_load_all(NAIVE.replace("NS", ns).replace("IMAGE", qi_image(docs))))
    found = {w.id: w for w in workloads(docs + naive)}
    assert {"Deployment/reports", "CronJob/nightly"} <= set(found)
    for wid in ("Deployment/reports", "CronJob/nightly"):
        problems = pod_problems(docs + naive, found[wid])
        ends = "activeDeadlineSeconds" if wid.startswith("CronJob/") else "liveness and readiness"
        for rule in ("runAsNonRoot", "seccompProfile", "automountServiceAccountToken", "own ServiceAccount",
                     "allowPrivilegeEscalation", "readOnlyRootFilesystem", "drop ALL", "resources.limits.cpu",
                     ends):
            assert any(rule in p for p in problems), f"{wid}: {rule} not caught in {problems}"
    assert any("fixed tag" in p for p in pod_problems(docs + naive, found["CronJob/nightly"]))
    assert any("QI_ACCESS_KEY from a Secret" in p for p in pod_problems(docs + naive, found["Deployment/reports"]))
    problems = deployment_problems(docs + naive, found["Deployment/reports"])
    for rule in ("no replicas", "maxUnavailable", "HorizontalPodAutoscaler", "PodDisruptionBudget", "topology spread"):
        assert any(rule in p for p in problems), f"{rule} not caught in {problems}"
    problems = qi_problems(docs + naive, found["Deployment/reports"])
    for rule in ("component label", "args", "grpc", "readinessProbe", "one Service"):
        assert any(rule in p for p in problems), f"{rule} not caught in {problems}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_audit_retention_job_runs_qi_maintain_as_the_gateway_databases_owner(rendered, overlay):
    docs = rendered[overlay]
    (job,) = [w for w in workloads(docs) if w.doc["kind"] == "CronJob"]
    (c,) = job.containers()
    assert c["image"] == qi_image(docs) and "command" not in c and c["args"] == ["maintain"]
    env = {e["name"]: e for e in c.get("env", [])}
    assert set(env) == {"QI_MIGRATION_DATABASE_URL"}, "the owner's URL and no runtime role's"
    (gw,) = [w for w in workloads(docs) if w.doc["kind"] == "Deployment"
             and w.labels.get("app.kubernetes.io/component") == "gateway"]
    (migrate,) = gw.pod["initContainers"]
    assert [e for e in migrate["env"] if e["name"] == "QI_MIGRATION_DATABASE_URL"] == [
        env["QI_MIGRATION_DATABASE_URL"]], "the same owner the gateway migrates with"
    assert job.doc["spec"]["concurrencyPolicy"] == "Forbid"
    known = k8s.env_vars_qi_reads()
    assert set(k8s.resolve_env(docs, c, lambda s, k, optional: "external")) <= known


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_namespace_enforces_the_restricted_pod_security_profile(rendered, overlay):
    docs = rendered[overlay]
    (ns,) = find(docs, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(d["metadata"].get("namespace") == name(ns) for d in docs if d["kind"] != "Namespace")


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("caller,callees", [("gateway", BACKENDS), (INSIGHTS, SERVICES)], ids=["gateway", INSIGHTS])
def test_each_caller_finds_each_service_through_its_service(rendered, overlay, caller, callees):
    docs = rendered[overlay]
    (w,) = [w for w in workloads(docs) if w.labels.get("app.kubernetes.io/component") == caller]
    env = k8s.resolve_env(docs, w.containers(init=False)[0], lambda s, k, optional: "external")
    for component in callees:
        url = urlparse(env[f"QI_{component.upper()}_URL"])
        assert url.scheme == "http", "plaintext h2c inside the namespace"
        svc = one(docs, "Service", url.hostname)
        (target,) = [w for w in workloads(docs) if selects({"matchLabels": svc["spec"]["selector"]}, w.labels)]
        assert target.labels["app.kubernetes.io/component"] == component
        assert url.port in [p["port"] for p in svc["spec"]["ports"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_the_cluster_must_provide_are_the_documented_ones(rendered, overlay):
    docs = rendered[overlay]
    cnpg = {f"{name(c)}-app" for c in find(docs, "Cluster")}
    # deploy/k8s/overlays/prod/kustomization.yaml lists them: the access key, and each runtime
    # role's password Secret, which CloudNativePG reads (spec.managed.roles) and qi serves with.
    documented = {"qi-access-key"} | {r["passwordSecret"]["name"] for c in find(docs, "Cluster")
                                      for r in c["spec"].get("managed", {}).get("roles", [])}
    for w in workloads(docs):
        for c in w.containers():
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref and not find(docs, "Secret", ref["name"]):
                    assert ref["name"] in cnpg | documented, f"{var['name']}: undocumented Secret {ref['name']}"
                    assert overlay != "dev", "dev generates every Secret it uses"
    if overlay == "prod":
        assert not find(docs, "Secret"), "production commits no Secret values"


# --- the network fence --------------------------------------------------------------------


def endpoints(docs):
    """Our pods, the database instances an operator makes, and stand-ins outside the namespace."""
    (ns,) = find(docs, "Namespace")
    ns_name = name(ns)
    ns_labels = {**ns["metadata"].get("labels", {}), "kubernetes.io/metadata.name": ns_name}
    ours = {}
    for w in workloads(docs):
        ours[w.labels.get("app.kubernetes.io/component", w.id)] = Endpoint(w.id, ns_name, w.labels, ns_labels, workload=w)
    for c in find(docs, "Cluster"):  # CloudNativePG instance pods carry these labels
        labels = {**c["spec"].get("inheritedMetadata", {}).get("labels", {}), "cnpg.io/cluster": name(c)}
        ours["database"] = Endpoint(f"Cluster/{name(c)}", ns_name, labels, ns_labels, extra_ports={})

    def outside(ns_, labels):
        return Endpoint(f"{ns_}/pod", ns_, labels, {"kubernetes.io/metadata.name": ns_}, ours=False)
    others = {
        "kube-dns": outside("kube-system", {"k8s-app": "kube-dns"}),
        "ingress": outside("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
        "elsewhere": outside("some-team", {"app": "curious"}),
        "same-ns-stranger": Endpoint("stranger", ns_name, {"app": "stranger"}, ns_labels),
        "internet": Endpoint("internet", "", {}, {}, ip="203.0.113.7", ours=False),
    }
    return ours, others


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_and_insights_reach_the_services_and_only_the_gateway_insights(rendered, overlay):
    """Exactly CALLERS' paths: each backend admits its callers and nobody else, in the
    namespace or outside it."""
    docs = rendered[overlay]
    policies = find(docs, "NetworkPolicy")
    ours, others = endpoints(docs)
    for component, callers in CALLERS.items():
        dst = ours[component]
        for src_name, src in {**ours, **others}.items():
            if src_name in callers:
                assert allowed(policies, src, dst, 50051), f"{src_name} -> {component}"
            else:
                # The callee's own ingress rules decide, whatever a caller's egress rules say.
                assert not ingress_allows(policies, src, dst, 50051), f"{src_name} must not reach {component}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_qis_components_reach_postgresql(rendered, overlay):
    docs = rendered[overlay]
    policies = find(docs, "NetworkPolicy")
    ours, others = endpoints(docs)
    db = ours["database"]
    for src_name, src in {**ours, **others}.items():
        if src_name == "database":
            continue  # a cluster's instances replicate to each other
        if src_name in [*COMPONENTS, "maintenance"]:
            assert allowed(policies, src, db, 5432), f"{src_name} -> PostgreSQL"
        else:
            assert not ingress_allows(policies, src, db, 5432), f"{src_name} must not reach PostgreSQL"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_reach_dns_and_nothing_else_outside(rendered, overlay):
    docs = rendered[overlay]
    policies = find(docs, "NetworkPolicy")
    ours, others = endpoints(docs)
    for component in COMPONENTS:
        src = ours[component]
        assert allowed(policies, src, others["kube-dns"], 53, "UDP"), f"{component} -> DNS"
        assert not allowed(policies, src, others["internet"], 443), f"{component} -> internet"
        assert not allowed(policies, src, others["elsewhere"], 8080), f"{component} -> other namespaces"
    assert allowed(policies, others["ingress"], ours["gateway"], 50051), "the ingress reaches the gateway"
    if find(docs, "Ingress"):  # behind an ingress, only the ingress controller calls the gateway
        assert not ingress_allows(policies, others["elsewhere"], ours["gateway"], 50051), "other namespaces -> gateway"
    for component in BACKENDS:
        assert not allowed(policies, ours[component], ours["gateway"], 50051), f"{component} -> gateway"


# --- the image ----------------------------------------------------------------------------


def test_the_image_runs_as_the_pods_user_with_qi_as_entrypoint(rendered):
    dockerfile = (k8s.DEPLOY / "docker/Dockerfile").read_text()
    final = dockerfile[dockerfile.rindex("\nFROM "):]
    assert re.search(r"^USER 65532:65532$", final, re.M), "numeric non-root user"
    assert '\nENTRYPOINT ["/usr/local/bin/qi"]' in final
    assert re.search(r"^EXPOSE 50051$", final, re.M)
    assert "cargo build --release --locked" in dockerfile
    for o in OVERLAYS:
        for w in workloads(rendered[o]):
            if is_qi(rendered[o], w):
                assert w.pod["securityContext"]["runAsUser"] == 65532


def dockerignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics, enough for our patterns: a match excludes the path and all under it."""
    parts = path.split("/")
    excluded = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        hit = any(
            fnmatch.fnmatch("/".join(parts[:i]), pat) or fnmatch.fnmatch("/".join(parts[:i]), pat.replace("**/", ""))
            for i in range(1, len(parts) + 1)
        )
        if hit:
            excluded = not negate
    return excluded


def test_the_build_context_holds_every_build_input_and_no_build_output():
    patterns = [l.strip() for l in (k8s.REPO / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    tracked = subprocess.run(["git", "ls-files"], cwd=k8s.REPO, check=True, capture_output=True,
                             text=True).stdout.split()
    kept = [f for f in tracked if not dockerignored(f, patterns)]
    needed = [f for f in tracked if f in ("Cargo.toml", "Cargo.lock") or re.match(
        r"(proto|services/[^/]+|tests)/(Cargo\.toml|build\.rs|sqlx\.toml|src/|migrations/|qi/|google/|lib\.rs|e2e/)", f)]
    assert needed and set(needed) <= set(kept), f"excluded build inputs: {sorted(set(needed) - set(kept))}"
    for out in ("target/debug/qi", ".git/HEAD", ".qi/secrets", "deploy/k8s/base/kustomization.yaml"):
        assert dockerignored(out, patterns), out
