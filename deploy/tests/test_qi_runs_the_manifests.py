"""The manifests' commands, ports and environment are ones `qi` really accepts. For each
overlay: start a throwaway PostgreSQL provisioned the way that overlay provisions its
database, run every init container's command with its rendered environment (all at once, as
pods starting together do), start every Deployment's `qi serve` with its rendered
environment, ask each probe the manifest declares what the kubelet would ask, call through the
gateway, then SIGTERM and watch the drain the termination grace period is sized for.

Only what cannot exist on a test machine is substituted, and each substitution is checked
against the manifest first: the listen address (loopback, a free port, after checking the
port is the container's), database hosts (mapped to the test server, after checking they
name the database's Service), the JWKS path (the repository's test JWKS, after checking the
path is mounted), and Secrets the cluster provides (test values)."""

from __future__ import annotations

import base64
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import k8s
from k8s import OVERLAYS, find, name, workloads

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICES = ["training", "projects", "metrics"]
# What the gateway routes to: the services and the read model (insights), which follows the
# services' change feeds itself. Started after them, as it follows them.
BACKENDS = [*SERVICES, "insights"]
COMPONENTS = ["gateway", *BACKENDS]
TEST_JWKS = k8s.REPO / "tests/fixtures/jwks.json"
TEST_JWKS_KEY = k8s.REPO / "tests/fixtures/es256-test-key.pem"  # its private half, kid test-es256


def qi_bin() -> Path:
    path = Path(os.environ.get("QI_BIN", k8s.REPO / "target/debug/qi"))
    if not path.exists():
        pytest.fail(f"{path} not found: build it with `cargo build --bin qi` (or set QI_BIN)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a throwaway PostgreSQL ----------------------------------------------------------------


def pg_bindir() -> Path:
    if os.environ.get("QI_PG_BINDIR"):
        return Path(os.environ["QI_PG_BINDIR"])
    if shutil.which("initdb"):
        return Path(shutil.which("initdb")).resolve().parent  # beside psql and pg_ctl
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        pytest.fail("PostgreSQL server binaries not found: apt-get install postgresql (or set QI_PG_BINDIR)")
    return found[-1].parent


class Postgres:
    """A private cluster under /tmp: unix socket for setup, 127.0.0.1 with passwords for qi."""

    def __init__(self):
        self.bin = pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="qi-deploy-pg-"))
        self.port = free_port()
        self.demote = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.demote = lambda: (os.setgid(pw.pw_gid), os.setuid(pw.pw_uid))
        self._run("initdb", "-D", self.root / "data", "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8")
        self._run("pg_ctl", "-D", self.root / "data", "-l", self.root / "log", "-w", "start", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off")

    def _run(self, tool, *args):
        subprocess.run([self.bin / tool, *map(str, args)], check=True, capture_output=True,
                       preexec_fn=self.demote, cwd=self.root)

    def sql(self, statement: str):
        self._run("psql", "-h", self.root, "-p", self.port, "-U", "postgres", "-d", "postgres",
                  "-v", "ON_ERROR_STOP=1", "-qc", statement)

    def add_database(self, owner: str, password: str, database: str, superuser: bool = False):
        pw = password.replace("'", "''")
        self.sql(f"CREATE ROLE \"{owner}\" LOGIN {'SUPERUSER' if superuser else ''} PASSWORD '{pw}'")
        self.sql(f'CREATE DATABASE "{database}" OWNER "{owner}"')

    def stop(self):
        try:
            self._run("pg_ctl", "-D", self.root / "data", "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def provision(docs: list[dict], pg: Postgres) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Creates what the overlay's database would hold. Returns the database host names the
    manifests may use (mapped to the test server) and the values of the Secrets the cluster
    would make (CloudNativePG's `<cluster>-app`)."""
    hosts, made = {}, {}
    local = f"127.0.0.1:{pg.port}"
    for sts in find(docs, "StatefulSet"):  # dev: the postgres image, as its entrypoint sets it up
        w = next(w for w in workloads([sts]))
        (c,) = w.containers(init=False)
        env = {e["name"]: e.get("value") for e in c["env"]}
        mount = next(m for m in c["volumeMounts"] if env["POSTGRES_PASSWORD_FILE"].startswith(m["mountPath"] + "/"))
        volume = next(v for v in w.pod["volumes"] if v["name"] == mount["name"])
        key = next(i["key"] for i in volume["secret"]["items"]
                   if i["path"] == env["POSTGRES_PASSWORD_FILE"][len(mount["mountPath"]) + 1:])
        password = k8s.secret_data(docs, volume["secret"]["secretName"])[key]
        # The image makes POSTGRES_USER a superuser owning POSTGRES_DB.
        pg.add_database(env["POSTGRES_USER"], password, env["POSTGRES_DB"], superuser=True)
        for svc in find(docs, "Service"):
            if k8s.selects({"matchLabels": svc["spec"]["selector"]}, w.labels):
                assert [p["port"] for p in svc["spec"]["ports"]] == [5432]
                hosts[name(svc)] = local
    passwords: dict[str, str] = {}
    for cluster in find(docs, "Cluster"):  # prod: CloudNativePG's initdb bootstrap and app Secret
        init = cluster["spec"]["bootstrap"]["initdb"]
        if init["owner"] not in passwords:  # one test server stands in for every cluster
            passwords[init["owner"]] = secrets.token_urlsafe(24)
            pg.add_database(init["owner"], passwords[init["owner"]], init["database"])
        password = passwords[init["owner"]]
        host = f"{name(cluster)}-rw.{cluster['metadata']['namespace']}"
        hosts[host] = local
        made[(f"{name(cluster)}-app", "uri")] = f"postgresql://{init['owner']}:{password}@{host}:5432/{init['database']}"
        # The runtime roles CloudNativePG manages, with the password Secret the platform team makes.
        for role in cluster["spec"].get("managed", {}).get("roles", []):
            assert role["ensure"] == "present" and role["login"] and not role.get("superuser")
            secret, password = role["passwordSecret"]["name"], secrets.token_urlsafe(24)
            pg.sql(f"CREATE ROLE \"{role['name']}\" LOGIN PASSWORD '{password}'")
            made[(secret, "username")], made[(secret, "password")] = role["name"], password
            made[(secret, "uri")] = f"postgresql://{role['name']}:{password}@{host}:5432/{init['database']}"
    return hosts, made


# --- the suite, started from the manifests --------------------------------------------------


@dataclass
class Process:
    component: str
    popen: subprocess.Popen
    addr: str
    log: Path
    env: dict

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class Suite:
    overlay: str
    docs: list[dict]
    migrations: dict[str, tuple[int, str]] = field(default_factory=dict)
    servers: dict[str, Process] = field(default_factory=dict)
    environment: object = None  # (workload, container) -> the environment qi runs with here
    pg: Postgres | None = None


def deployment(docs, component) -> k8s.Workload:
    (w,) = [w for w in workloads(docs) if w.doc["kind"] == "Deployment"
            and w.labels.get("app.kubernetes.io/component") == component]
    return w


def health(addr: str, service: str, timeout: float) -> int:
    with grpc.insecure_channel(addr) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service),
                                                   timeout=timeout).status


@pytest.fixture(scope="module", params=OVERLAYS)
def suite(request, tmp_path_factory):
    overlay = request.param
    docs = k8s.render_overlay(overlay)
    logs = tmp_path_factory.mktemp(f"qi-{overlay}")
    pg = Postgres()
    started: list[subprocess.Popen] = []
    try:
        hosts, made = provision(docs, pg)
        access_key = secrets.token_urlsafe(32)

        def external(secret, key, optional):
            if (secret, key) in made:
                return made[(secret, key)]
            if secret == "qi-access-key":  # documented in the prod overlay: the platform team makes it
                return access_key if key == "current" else None
            if optional:
                return None
            pytest.fail(f"the manifests need Secret {secret} key {key}, which nothing provides")

        def local_database(url: str) -> str:
            u = urlparse(url)
            assert f"{u.hostname}" in hosts, f"database host {u.hostname} is not the overlay's database"
            assert u.port == 5432
            netloc = f"{u.username}:{u.password}@{hosts[u.hostname]}"
            return urlunparse(u._replace(netloc=netloc))

        suite = Suite(overlay, docs, pg=pg)
        ports = {c: free_port() for c in COMPONENTS}

        def environment(w: k8s.Workload, container: dict) -> dict[str, str]:
            env = k8s.resolve_env(docs, container, external)
            if "QI_LISTEN" in env:
                assert env["QI_LISTEN"].endswith(":50051")
                port = ports.get(w.labels["app.kubernetes.io/component"]) or free_port()  # a job listens nowhere
                env["QI_LISTEN"] = f"127.0.0.1:{port}"
            for var in ("QI_DATABASE_URL", "QI_MIGRATION_DATABASE_URL"):
                if var in env:
                    env[var] = local_database(env[var])
            if "QI_JWKS_FILE" in env:
                path = env["QI_JWKS_FILE"]
                mounts = [m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"] + "/")]
                assert mounts and mounts[0].get("readOnly"), f"QI_JWKS_FILE {path} is not on a read-only mount"
                volume = next(v for v in w.pod["volumes"] if v["name"] == mounts[0]["name"])
                source = volume.get("configMap") or volume.get("secret")
                assert any(i["path"] == path[len(mounts[0]["mountPath"]) + 1:] for i in source["items"])
                env["QI_JWKS_FILE"] = str(TEST_JWKS)
            for svc in BACKENDS:
                var = f"QI_{svc.upper()}_URL"
                if var in env:  # the static tests check these name the right Service
                    env[var] = f"http://127.0.0.1:{ports[svc]}"
            return env

        suite.environment = environment
        # Init containers first, all at once, as replicas starting together run them.
        migrating = {}
        for component in COMPONENTS:
            w = deployment(docs, component)
            for init in w.pod.get("initContainers", []):
                assert "command" not in init
                log = logs / f"{component}-{init['name']}.log"
                p = subprocess.Popen([qi_bin(), *init["args"]], env=environment(w, init),
                                     stdout=log.open("w"), stderr=subprocess.STDOUT)
                started.append(p)
                migrating[component] = (p, log)
        for component, (p, log) in migrating.items():
            suite.migrations[component] = (p.wait(timeout=120), log.read_text(errors="replace")[-4000:])

        for component in COMPONENTS:
            w = deployment(docs, component)
            (main,) = w.containers(init=False)
            log = logs / f"{component}.log"
            env = environment(w, main)
            p = subprocess.Popen([qi_bin(), *main["args"]], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
            started.append(p)
            suite.servers[component] = Process(component, p, env["QI_LISTEN"], log, env)

        # Wait as the startup probe does: its period times its failure threshold.
        for proc in suite.servers.values():
            (main,) = deployment(docs, proc.component).containers(init=False)
            probe = main["startupProbe"]
            deadline = time.monotonic() + probe["periodSeconds"] * probe["failureThreshold"]
            while True:
                assert proc.popen.poll() is None, f"qi serve {proc.component} exited:\n{proc.output()}"
                try:
                    if health(proc.addr, probe["grpc"].get("service", ""), probe.get("timeoutSeconds", 1)) == SERVING:
                        break
                except grpc.RpcError:
                    pass
                assert time.monotonic() < deadline, f"{proc.component}: startup probe never passed\n{proc.output()}"
                time.sleep(0.1)
        yield suite
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
                p.wait()
        pg.stop()


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_init_container_migrates_and_exits_zero(suite, component):
    code, output = suite.migrations[component]
    assert code == 0, f"{' '.join(deployment(suite.docs, component).pod['initContainers'][0]['args'])}:\n{output}"


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_deployment_passes_every_probe_it_declares(suite, component):
    proc = suite.servers[component]
    (main,) = deployment(suite.docs, component).containers(init=False)
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = main[kind]
        status = health(proc.addr, probe["grpc"].get("service", ""), probe.get("timeoutSeconds", 1))
        assert status == SERVING, f"{kind} {probe['grpc']}: {status}\n{proc.output()}"


def test_the_audit_retention_job_runs_and_exits_zero(suite):
    (job,) = [w for w in k8s.workloads(suite.docs) if w.doc["kind"] == "CronJob"]
    (c,) = job.containers()
    done = subprocess.run([qi_bin(), *c["args"]], env=suite.environment(job, c), capture_output=True, text=True,
                          timeout=job.pod["activeDeadlineSeconds"])
    assert done.returncode == 0, f"qi {' '.join(c['args'])}:\n{done.stderr[-4000:]}"
    assert "audit retention" in done.stderr


def test_the_gateways_runtime_role_cannot_change_the_audit_trail(suite):
    """The role `qi serve gateway` runs as (its rendered QI_DATABASE_URL) may add audit events,
    not update or delete them."""
    user = urlparse(suite.servers["gateway"].env["QI_DATABASE_URL"]).username
    for privilege, want in (("INSERT", "t"), ("SELECT", "t"), ("UPDATE", "f"), ("DELETE", "f"), ("TRUNCATE", "f")):
        out = subprocess.run([suite.pg.bin / "psql", "-h", suite.pg.root, "-p", str(suite.pg.port), "-U", "postgres",
                              "-d", "qi", "-Atc",
                              f"SELECT has_table_privilege('{user}', 'gateway.audit_event', '{privilege}')"],
                             capture_output=True, text=True, preexec_fn=suite.pg.demote, cwd=suite.pg.root)
        assert out.stdout.strip() == want, f"{user} {privilege}: {out.stdout}{out.stderr}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es256_token(claims: dict) -> str:
    """A JWT signed with the test JWKS's key, as an identity provider would sign one."""
    header = {"alg": "ES256", "typ": "JWT", "kid": "test-es256"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", TEST_JWKS_KEY], input=signing_input.encode(),
                         check=True, capture_output=True).stdout
    # DER SEQUENCE { INTEGER r, INTEGER s } -> the 64-byte r || s that JWS uses.
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    parts = []
    for _ in range(2):
        assert der[i] == 0x02
        length = der[i + 1]
        parts.append(int.from_bytes(der[i + 2:i + 2 + length], "big").to_bytes(32, "big"))
        i += 2 + length
    return f"{signing_input}.{b64url(b''.join(parts))}"


def test_a_token_reaches_every_service_through_the_gateway_with_the_rendered_keys(suite):
    gateway = suite.servers["gateway"]
    env = gateway.env
    if "QI_JWT_SECRET" in env:  # development: HS256, minted as a developer would
        token = subprocess.run([qi_bin(), "token", "--sub", "deploy-check", "--role", "admin", "--site", "*"],
                               env=env, check=True, capture_output=True, text=True).stdout.strip()
    else:  # production: the identity provider's token, with the rendered issuer and audience
        token = es256_token({"sub": "deploy-check", "roles": ["admin"], "sites": ["*"], "iss": env["QI_JWT_ISSUER"],
                             "aud": env["QI_JWT_AUDIENCE"], "iat": int(time.time()), "exp": int(time.time()) + 300})
    calls = {  # (method, the request encoded by hand: field 1 `parent` where the request has one)
        "training": ("/qi.training.v1.TrainingService/ListCourses", b"\n\x05trust"),
        "projects": ("/qi.projects.v1.ProjectService/ListSites", b""),
        "metrics": ("/qi.metrics.v1.MetricService/ListMetrics", b"\n\x05trust"),
        "insights": ("/qi.insights.v1.InsightsService/ListCapabilityCoverage", b"\n\x07sites/-"),
    }
    with grpc.insecure_channel(gateway.addr) as ch:
        for component, (method, request) in calls.items():
            call = ch.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
            try:
                call(request, metadata=[("authorization", f"Bearer {token}")], timeout=10)
            except grpc.RpcError as e:
                pytest.fail(f"{method} through the gateway: {e.code()} {e.details()}\n"
                            f"gateway:\n{gateway.output()}\n{component}:\n{suite.servers[component].output()}")


def test_sigterm_turns_readiness_off_then_exits_cleanly_within_the_grace_period(suite):
    """Runs last for its overlay (pytest keeps file order within a fixture's parameter)."""
    signalled = time.monotonic()
    for proc in suite.servers.values():
        proc.popen.send_signal(signal.SIGTERM)
    for proc in suite.servers.values():
        (main,) = deployment(suite.docs, proc.component).containers(init=False)
        probe = main["readinessProbe"]
        # During the drain delay (5 s) the server still answers, and says NOT_SERVING, so the
        # endpoints controller drops the pod while calls in flight finish. The signal is taken
        # asynchronously: on a loaded machine the first probe may come before it, so probe
        # for a second, as the kubelet probes again.
        service, timeout = probe["grpc"].get("service", ""), probe.get("timeoutSeconds", 1)
        turned = time.monotonic() + 1.0
        status = health(proc.addr, service, timeout)
        while status != NOT_SERVING and time.monotonic() < turned:
            time.sleep(0.05)
            status = health(proc.addr, service, timeout)
        assert status == NOT_SERVING, f"{proc.component}: readiness during the drain: {status}"
    for proc in suite.servers.values():
        grace = deployment(suite.docs, proc.component).pod["terminationGracePeriodSeconds"]
        remaining = grace - (time.monotonic() - signalled)
        try:
            code = proc.popen.wait(timeout=max(remaining, 0))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{proc.component} still running {grace} s after SIGTERM: the kubelet would SIGKILL it")
        assert code == 0, f"{proc.component} exited {code}:\n{proc.output()}"
