"""Reading rendered Kubernetes manifests: rendering an overlay, finding every pod template in
it (whatever the kind), resolving a container's environment as the kubelet would, and
deciding whether NetworkPolicies let one pod reach another. Used by the deploy tests."""

from __future__ import annotations

import base64
import functools
import ipaddress
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
REPO = DEPLOY.parent
K8S = DEPLOY / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))

# The image every qi container runs, before an overlay's `images:` renames it.
QI_IMAGE_NAME = "qi"


def kubectl() -> str:
    return os.environ.get("KUBECTL", "kubectl")


@functools.cache
def _render_text(path: Path) -> str:
    return subprocess.run(
        [kubectl(), "kustomize", str(path)], check=True, capture_output=True, text=True
    ).stdout


def render_overlay(overlay: str) -> list[dict]:
    """An overlay under deploy/k8s/overlays, rendered once per run (a fresh copy each call)."""
    return [d for d in yaml.safe_load_all(_render_text(K8S / "overlays" / overlay)) if d]


def name(doc: dict) -> str:
    return doc["metadata"]["name"]


def find(docs: list[dict], kind: str, name_: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name_ is None or name(d) == name_)]


def one(docs: list[dict], kind: str, name_: str) -> dict:
    found = find(docs, kind, name_)
    assert len(found) == 1, f"expected one {kind}/{name_}, found {len(found)}"
    return found[0]


@dataclass
class Workload:
    """One pod template and the object that holds it."""

    doc: dict
    pod: dict  # the PodSpec
    labels: dict  # the pod template's labels

    @property
    def id(self) -> str:
        return f"{self.doc['kind']}/{name(self.doc)}"

    @property
    def namespace(self) -> str | None:
        return self.doc["metadata"].get("namespace")

    def containers(self, init: bool = True) -> list[dict]:
        return (self.pod.get("initContainers", []) if init else []) + self.pod["containers"]


def workloads(docs: list[dict]) -> list[Workload]:
    """Every pod template in `docs`, found structurally (any mapping with a `containers` list),
    so a workload of any kind (Deployment, StatefulSet, Job, CronJob, DaemonSet, Pod, or a
    custom resource embedding a pod spec) is found without being listed here."""
    found: list[Workload] = []

    def walk(node, doc):
        if isinstance(node, dict):
            spec = node.get("spec")
            if isinstance(spec, dict) and isinstance(spec.get("containers"), list):
                # A pod template (or a Pod): its labels are beside its spec.
                found.append(Workload(doc, spec, node.get("metadata", {}).get("labels", {})))
                return
            if isinstance(node.get("containers"), list):
                found.append(Workload(doc, node, {}))  # a bare PodSpec, without labels
                return
            for v in node.values():
                walk(v, doc)
        elif isinstance(node, list):
            for v in node:
                walk(v, doc)

    for doc in docs:
        walk(doc, doc)
    return found


def selects(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels; {} selects all."""
    selector = selector or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def secret_data(docs: list[dict], secret: str) -> dict[str, str] | None:
    """The decoded data of a Secret rendered in `docs`, or None when it is not rendered."""
    found = find(docs, "Secret", secret)
    if not found:
        return None
    s = found[0]
    data = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
    return {**data, **(s.get("stringData") or {})}


def resolve_env(docs: list[dict], container: dict, external) -> dict[str, str]:
    """The environment the kubelet would give `container`: envFrom first, then env (later
    wins). A Secret that is not rendered is asked of `external(secret, key, optional)`,
    which returns the value, or None to leave the variable out."""
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            cm = one(docs, "ConfigMap", src["configMapRef"]["name"])
            env.update(cm.get("data", {}))
        elif "secretRef" in src:
            s = one(docs, "Secret", src["secretRef"]["name"])
            env.update({k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()})
        else:
            raise AssertionError(f"unsupported envFrom {src}")
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            r = ref["configMapKeyRef"]
            env[var["name"]] = one(docs, "ConfigMap", r["name"])["data"][r["key"]]
        elif "secretKeyRef" in ref:
            r = ref["secretKeyRef"]
            data = secret_data(docs, r["name"])
            if data is None:
                value = external(r["name"], r["key"], r.get("optional", False))
            else:
                # The kubelet leaves out an optional key that is missing and refuses a required one.
                assert r["key"] in data or r.get("optional"), f"Secret {r['name']} has no key {r['key']}"
                value = data.get(r["key"])
            if value is not None:
                env[var["name"]] = value
        else:
            raise AssertionError(f"{var['name']}: unsupported valueFrom {ref}")
    return env


def container_port(workload: Workload, port) -> int | None:
    """A port number, or a named container port of the workload resolved to its number."""
    if isinstance(port, int):
        return port
    for c in workload.containers(init=False):
        for p in c.get("ports", []):
            if p.get("name") == port:
                return p["containerPort"]
    return None


# --- NetworkPolicy evaluation --------------------------------------------------------------


@dataclass
class Endpoint:
    """Something that sends or receives traffic: a pod of ours, or a stand-in outside."""

    label: str
    namespace: str
    labels: dict
    ns_labels: dict
    ip: str | None = None  # for destinations outside the cluster (ipBlock)
    workload: Workload | None = None
    ours: bool = True  # our namespace's NetworkPolicies apply to it
    extra_ports: dict = field(default_factory=dict)


def _peer_matches(peer: dict, ep: Endpoint, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        if ep.ip is None:
            return False  # in-cluster pods are addressed by selectors in these manifests
        block = peer["ipBlock"]
        ip = ipaddress.ip_address(ep.ip)
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(c) for c in block.get("except", [])
        )
    if ep.ip is not None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], ep.ns_labels):
            return False
    elif ep.namespace != policy_ns:
        return False
    return selects(peer.get("podSelector"), ep.labels)


def _port_matches(rule_ports, dst: Endpoint, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        if "port" not in p:
            return True
        number = (
            container_port(dst.workload, p["port"]) if dst.workload else dst.extra_ports.get(p["port"], p["port"])
        )
        end = p.get("endPort", number)
        if isinstance(number, int) and number <= port <= end:
            return True
    return False


def _direction_allows(policies, subject: Endpoint, peer: Endpoint, dst: Endpoint, port, protocol, kind) -> bool:
    if not subject.ours:
        return True  # only our namespace's policies are known
    key = "ingress" if kind == "Ingress" else "egress"
    peers_key = "from" if kind == "Ingress" else "to"
    applying = [
        p
        for p in policies
        if kind in p["spec"].get("policyTypes", ["Ingress"])
        and p["metadata"].get("namespace") == subject.namespace
        and selects(p["spec"].get("podSelector"), subject.labels)
    ]
    if not applying:
        return True
    for p in applying:
        for rule in p["spec"].get(key, []) or []:
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(x, peer, subject.namespace) for x in peers):
                continue
            if _port_matches(rule.get("ports"), dst, port, protocol):
                return True
    return False


def ingress_allows(policies, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
    """Whether the policies selecting `dst` admit `src` on `port` (whatever `src`'s own say)."""
    return _direction_allows(policies, dst, src, dst, port, protocol, "Ingress")


def allowed(policies, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
    """Whether NetworkPolicies let `src` open a connection to `dst` on `port`."""
    return _direction_allows(policies, src, dst, dst, port, protocol, "Egress") and ingress_allows(
        policies, src, dst, port, protocol
    )


def env_vars_qi_reads() -> set[str]:
    """Every variable the configuration loader reads, from its source."""
    source = (REPO / "services/platform/src/config.rs").read_text()
    return set(re.findall(r'"((?:QI|OTEL)_[A-Z0-9_]+)"', source))
