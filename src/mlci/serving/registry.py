"""``mlci push-image`` (``make push-image``): push a release image, never over another one.

A version tag names one image for good: the model card, the signature and the rollback advice
all point at it. So, before pushing ``IMAGE:VERSION``:

* the registry has no such tag: push it and print the digest;
* it has this very image (the same config digest, e.g. ``make push-image`` run twice): nothing
  to push, print the existing digest;
* it has an image built from the same commit (a re-run of the release job rebuilt it: image
  builds are not byte-reproducible): keep the one already there, push nothing, print its digest,
  which the next steps sign and attest again (both are idempotent);
* it has anything else: refuse, naming both; release a new version instead.

The commit is the ``org.opencontainers.image.revision`` label ``mlci containerize`` puts on the
image. The existing digest is written to ``$GITHUB_OUTPUT`` as ``digest=`` in every case.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlci.errors import UserError
from mlci.serving.docker import docker

REVISION = "org.opencontainers.image.revision"
_LOOPBACK = ("127.", "localhost", "[::1]")


@dataclass(frozen=True)
class Remote:
    digest: str  # the manifest's digest: what `IMAGE@sha256:...` names
    config: str  # the image config's digest: the image ID docker shows locally


def _insecure(ref: str) -> list[str]:
    """A registry on this machine speaks plain HTTP (Docker allows that for loopback only)."""
    return ["--insecure"] if ref.startswith(_LOOPBACK) else []


def remote(ref: str) -> Remote | None:
    """What the registry holds under ``ref`` (``IMAGE:TAG``), or None when the tag is absent."""
    result = docker("manifest", "inspect", "--verbose", *_insecure(ref), ref, check=False)
    if result.returncode != 0:
        words = (result.stderr or result.stdout).strip()
        # The tag, or (a first release) the whole repository, is not there yet.
        if re.search(r"no such manifest|manifest unknown|name unknown", words, re.I):
            return None
        raise UserError(f"cannot read {ref} from its registry: {words[-500:]}")
    found = json.loads(result.stdout)
    if isinstance(found, list):  # a manifest list: the tag exists, whatever its platforms
        found = found[0]
    manifest = found.get("SchemaV2Manifest") or found.get("OCIManifest") or {}
    return Remote(found["Descriptor"]["digest"], manifest.get("config", {}).get("digest", ""))


def _local(ref: str) -> tuple[str, str]:
    """(image ID, revision label) of the local image ``ref``."""
    result = docker("image", "inspect", "--format", "{{json .}}", ref, check=False)
    if result.returncode != 0:
        raise UserError(f"no local image {ref}: build it first (`make containerize`)")
    info = json.loads(result.stdout)
    return info["Id"], ((info.get("Config") or {}).get("Labels") or {}).get(REVISION, "")


def _revision_of(image: str, digest: str) -> str:
    """The revision label of the image the registry holds (pulled by digest: no tag moves)."""
    pinned = f"{image}@{digest}"
    docker("pull", "--quiet", pinned, timeout=1800)
    return _local(pinned)[1]


def _pushed_digest(image: str, ref: str) -> str:
    digests = docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout
    for entry in json.loads(digests) or []:
        name, _, digest = entry.partition("@")
        if name == image:
            return digest
    raise UserError(f"pushed {ref}, but docker recorded no digest for {image}")


def push(image: str, version: str) -> tuple[str, str]:
    """Push ``image:version`` unless the tag exists; returns (digest, what happened)."""
    ref = f"{image}:{version}"
    local_id, revision = _local(ref)
    there = remote(ref)
    if there is None:
        docker("push", ref, timeout=3600)
        digest = _pushed_digest(image, ref)
        outcome = f"pushed {ref}"
    elif there.config == local_id:
        digest, outcome = there.digest, f"{ref} is already this image: nothing pushed"
    else:
        theirs = _revision_of(image, there.digest)
        if not revision or theirs != revision:
            built = f"built from commit {theirs[:12]}" if theirs else "with no revision label"
            raise UserError(
                f"{ref} already exists with digest {there.digest} ({built}); this image "
                f"(commit {revision[:12] or 'unknown'}) differs. A release never overwrites a tag: "
                "tag a new version"
            )
        digest = there.digest
        outcome = (
            f"{ref} was already released from commit {revision[:12]}: kept it, pushed nothing "
            "(the rebuilt image is not byte-identical, so it is not pushed)"
        )
    _github_output(digest)
    return digest, outcome


def _github_output(digest: str) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with Path(target).open("a", encoding="utf-8") as f:
            f.write(f"digest={digest}\n")
