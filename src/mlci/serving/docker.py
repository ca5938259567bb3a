"""The Docker engine as the release and image commands use it: one way to call ``docker``, the
base image a Bento's Dockerfile names, and a stand-in for that base where it cannot be pulled.

The stand-in: where Docker Hub cannot be reached (an offline runner, a mirror-only network),
``python:3.11-slim`` is built from Debian packages with ``debootstrap`` (bookworm, minbase,
python3.11, python3-venv, python3-pip, ca-certificates; ``/usr/local/bin/python`` linked; no
EXTERNALLY-MANAGED marker, as the official image has none) and tagged under that name, so the
Bento's Dockerfile builds unchanged and nothing is pulled. It is labelled ``org.mlci.stand-in``.
It also trusts the certificate authorities this machine added (``/usr/local/share/
ca-certificates``, e.g. a TLS-inspecting proxy's) and points ``SSL_CERT_FILE`` at the system
store, so pip and uv reach PyPI from inside the build where the machine itself does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from mlci.errors import UserError

STANDIN_LABEL = "org.mlci.stand-in"
# Debian release each official python:3.X-slim tag is built on (the tags name none).
SUITES = {"3.11": "bookworm"}
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
MIRROR = os.environ.get("MLCI_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """``docker ARGS``; with ``check``, a failure is a UserError carrying docker's own words."""
    try:
        result = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise UserError("`docker` not found: install Docker (the engine and its CLI)") from None
    if check and result.returncode != 0:
        words = (result.stderr or result.stdout).strip()[-2000:]
        raise UserError(f"`docker {' '.join(args[:3])}` failed: {words}")
    return result


def engine_answers() -> bool:
    """True when a Docker engine answers (``docker info``)."""
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20)
        return result.returncode == 0
    except (UserError, subprocess.TimeoutExpired):
        return False


def image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


def base_image_of(dockerfile: Path) -> str:
    """The image the Dockerfile's first FROM names (BentoML: ``python:3.11-slim``)."""
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", line, re.I)
        if match:
            return match.group(1)
    raise UserError(f"{dockerfile}: no FROM line")


def ensure_base(ref: str, standin: bool = False) -> str:
    """Make ``ref`` available locally: already there, pulled, or (``standin``) built as a
    Debian stand-in. Returns which ("present", "pulled", "stand-in")."""
    if image_exists(ref):
        return "present"
    pulled = docker("pull", ref, check=False, timeout=600)
    if pulled.returncode == 0:
        return "pulled"
    if not standin:
        words = (pulled.stderr or pulled.stdout).strip()[-500:]
        raise UserError(f"base image {ref} cannot be pulled: {words}")
    build_standin(ref)
    return "stand-in"


def _python_version(ref: str) -> str:
    match = re.match(r"^(?:docker\.io/)?(?:library/)?python:(3\.\d+)-slim(?:-bookworm)?$", ref)
    if not match or match.group(1) not in SUITES:
        known = ", ".join(f"python:{v}-slim" for v in SUITES)
        raise UserError(
            f"base image {ref!r} cannot be pulled and has no Debian stand-in (known: {known}); "
            "pull or load it into the engine first"
        )
    return match.group(1)


def build_standin(ref: str) -> None:
    """Build ``ref`` (an official ``python:3.X-slim`` name) from Debian packages. Needs root
    (debootstrap, chroot) and the Debian mirror; takes a few minutes."""
    version = _python_version(ref)
    if not shutil.which("debootstrap"):
        raise UserError(
            f"{ref} is not in the engine and cannot be pulled; building its stand-in needs "
            "debootstrap (`apt-get install debootstrap`, as root)"
        )
    packages = f"python{version},python3-venv,python3-pip,ca-certificates"
    with tempfile.TemporaryDirectory(prefix="mlci-base-") as tmp:
        root = Path(tmp) / "root"
        _run(["debootstrap", "--variant=minbase", f"--include={packages}",
              SUITES[version], str(root), MIRROR], "debootstrap")  # fmt: skip
        # What the official image has: `python` and `pip` on PATH under /usr/local/bin, pip
        # free to install (no EXTERNALLY-MANAGED), no apt lists or caches.
        local = root / "usr/local/bin"
        for name, target in (("python", f"/usr/bin/python{version}"), ("pip", "/usr/bin/pip3")):
            (local / name).unlink(missing_ok=True)
            (local / name).symlink_to(target)
        for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        _trust_local_cas(root)
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives", "var/log"):
            for path in (root / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        changes = [
            "ENV LANG=C.UTF-8",
            "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"LABEL {STANDIN_LABEL}=debootstrap-{SUITES[version]}",
            'CMD ["python3"]',
        ]
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        args = ["docker", "import", *[x for c in changes for x in ("--change", c)], "-", ref]
        result = subprocess.run(args, stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if result.returncode != 0 or tar.returncode != 0:
            raise UserError(f"`docker import` of the {ref} stand-in failed: {result.stderr}")


def _trust_local_cas(root: Path) -> None:
    """Copy this machine's added CAs into the stand-in and rebuild its CA bundle."""
    added = sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []
    if not added:
        return
    target = root / "usr/local/share/ca-certificates"
    target.mkdir(parents=True, exist_ok=True)
    for cert in added:
        shutil.copy2(cert, target / cert.name)
    _run(["chroot", str(root), "update-ca-certificates"], "update-ca-certificates (stand-in)")


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-1500:]
        raise UserError(f"{what} failed (exit {result.returncode}): {tail}")


def is_standin(ref: str) -> bool:
    labels = docker("image", "inspect", "--format", "{{json .Config.Labels}}", ref).stdout
    return STANDIN_LABEL in labels


def size_bytes(ref: str) -> int:
    """The image's unpacked size (every layer), as ``docker image inspect`` reports it."""
    return int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())
