"""Run a built image and check it: ``mlci smoke-image`` and ``mlci test-image``.

* ``smoke_image``: the image as ``docker run`` starts it, on a free loopback port and under a
  unique container name, then the release smoke test (:func:`mlci.release.smoke`). A container
  that exits fails at once, and every failure shows the container's own last log lines (the
  container is removed only after they are read).
* ``run_as_deployed``: the image as ``deploy/k8s/deployment.yaml`` runs it: its user and group
  (and ``fsGroup`` as a supplementary group), read-only root filesystem, dropped capabilities,
  no privilege escalation, memory and CPU limits, its environment, ``emptyDir`` volumes as
  tmpfs mounts and the prediction-log claim as a Docker named volume. Requests go in; the
  predictions must reach that volume.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlci.errors import UserError
from mlci.serving.docker import docker

DEPLOYMENT = Path("deploy/k8s/deployment.yaml")
PORT = 3000
LOG_LINES = 30


@dataclass
class Started:
    name: str
    url: str
    seconds_to_ready: float


@dataclass
class RunSpec:
    """``docker run`` options equivalent to the manifest's pod and container."""

    options: list[str] = field(default_factory=list)
    log_volume: str = ""  # the Docker volume standing in for the prediction-log claim
    log_mount: str = ""  # where the container mounts it
    log_path: str = ""  # MLCI_PREDICTION_LOG inside the container


# A traceback's last line, `module.ExceptionName: message`: what the service itself said.
_RAISED = re.compile(r"^[\w.]*(Error|Exception|Unavailable|Exit)\w*: ")


def container_logs(name: str) -> str:
    """The exceptions the container raised (each once, first first), then its last lines: a
    supervisor's own traceback after a worker's failure would otherwise hide the cause."""
    result = docker("logs", name, check=False)
    lines = (result.stdout + result.stderr).strip().splitlines()
    if not lines:
        return f"--- {name} wrote no log ---"
    raised = list(dict.fromkeys(x.strip() for x in lines if _RAISED.match(x.strip())))
    out = [f"--- what {name} raised ---", *raised] if raised else []
    return "\n".join([*out, f"--- last lines of {name}'s log ---", *lines[-LOG_LINES:]])


def _state(name: str) -> tuple[str, int]:
    out = docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).stdout
    status, code = out.split()
    return status, int(code)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def wait_ready(name: str, url: str, wait_seconds: float) -> float:
    """Seconds from now until ``/readyz`` answers 200; a UserError as soon as the container
    stops, or when the wait runs out."""
    start = time.monotonic()
    while True:
        status, code = _state(name)
        if status in ("exited", "dead"):
            raise UserError(f"container {name} exited (code {code}) before /readyz answered")
        if _ready(url):
            return time.monotonic() - start
        if time.monotonic() - start > wait_seconds:
            raise UserError(f"{url}/readyz not ready after {wait_seconds:.0f} s")
        time.sleep(0.2)


@contextmanager
def running(image: str, options: list[str], wait_seconds: float = 120) -> Iterator[Started]:
    """Start ``image`` detached on a free loopback port; yield once ready; always remove it.
    A failure inside carries the container's last log lines."""
    name = f"mlci-{uuid.uuid4().hex[:10]}"
    start = time.monotonic()
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1::{PORT}", *options, image)
    try:
        host_port = docker("port", name, f"{PORT}/tcp").stdout.split()[0]
        url = f"http://{host_port}"
        wait_ready(name, url, wait_seconds)
        started = Started(name, url, time.monotonic() - start)  # from `docker run` on
        yield started
    except UserError as err:
        raise UserError(f"{err}\n{container_logs(name)}") from None
    finally:
        docker("rm", "--force", "--volumes", name, check=False)


def smoke_image(image: str, smoke: Callable[[str], list[str]], wait: float = 120) -> list[str]:
    """``smoke(url)``: the release smoke test (:func:`mlci.release.smoke`), passed in by the
    command line (a phase does not import the release layer above it)."""
    with running(image, [], wait) as c:
        return [f"{image} ready in {c.seconds_to_ready:.1f} s at {c.url}", *smoke(c.url)]


# --------------------------------------------------------------------------- as deployed


def _deployment(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    pod = doc["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def _env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            value = str(item["value"])
            for key, known in env.items():  # $(VAR) as the kubelet expands it
                value = value.replace(f"$({key})", known)
            env[item["name"]] = value
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod_name
    return env


def run_spec(path: Path = DEPLOYMENT, volume: str = "", pod_name: str = "mlci-0") -> RunSpec:
    """``docker run`` options for the manifest's pod, with ``volume`` as the log claim."""
    pod, container = _deployment(path)
    pod_sc = pod.get("securityContext", {})
    sc = {**pod_sc, **container.get("securityContext", {})}
    spec = RunSpec(log_volume=volume)
    opts = spec.options
    if sc.get("runAsUser") is not None:
        opts += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"]
    if pod_sc.get("fsGroup") is not None:
        opts += ["--group-add", str(pod_sc["fsGroup"])]
    if sc.get("readOnlyRootFilesystem"):
        opts.append("--read-only")
    if sc.get("allowPrivilegeEscalation") is False:
        opts += ["--security-opt", "no-new-privileges"]
    for cap in sc.get("capabilities", {}).get("drop", []):
        opts += ["--cap-drop", cap]
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        opts += ["--memory", str(limits["memory"]).replace("Gi", "g").replace("Mi", "m")]
    if "cpu" in limits:
        cpu = str(limits["cpu"])
        opts += ["--cpus", str(int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu))]
    env = _env(container, pod_name)
    for key, value in env.items():
        opts += ["--env", f"{key}={value}"]
    spec.log_path = env.get("MLCI_PREDICTION_LOG", "")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        source = volumes[mount["name"]]
        if "emptyDir" in source:  # an empty, writable folder, as the kubelet makes it
            opts += ["--tmpfs", f"{mount['mountPath']}:rw,exec,mode=1777"]
        elif "persistentVolumeClaim" in source:
            spec.log_mount = mount["mountPath"]
            opts += ["--mount", f"type=volume,source={volume},target={mount['mountPath']}"]
        else:
            raise UserError(f"{path}: volume {mount['name']!r}: no Docker stand-in for it")
    return spec


def read_volume(image: str, volume: str, mount: str) -> str:
    """Every ``*.jsonl`` in the volume, read through a throw-away container of the image."""
    result = docker(
        "run", "--rm", "--entrypoint", "sh", "--mount",
        f"type=volume,source={volume},target={mount},readonly", image,
        "-c", f"cat {mount}/*.jsonl 2>/dev/null || true",
    )  # fmt: skip
    return result.stdout


def post(url: str, body: Any) -> tuple[int, str]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
