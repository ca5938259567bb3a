"""Release steps that hold logic, so the release workflow only calls them.

* ``verify``: the tag is ``vX.Y.Z``, points at a commit on the default branch, its ``dvc.lock``
  is up to date, and its committed metrics pass the gate. Otherwise nothing is built.
* ``smoke``: a running service (the image under test, or ``make serve``) answers ``/readyz``,
  a valid request with a known label and an invalid one with a 4xx naming the field.
* ``model_card``: the GitHub Release notes: metrics, slices, data digest, params, image digest,
  how to verify the signature and how to roll back.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlci import contract, files, history, paths
from mlci.config import GATE_METRICS
from mlci.errors import UserError

TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
REGISTRY = "ghcr.io"


def version_of(tag: str) -> str:
    if not TAG.match(tag):
        raise UserError(f"release tag {tag!r} is not of the form vX.Y.Z (e.g. v1.4.0)")
    return tag[1:]


def image_name(repository: str) -> str:
    """ghcr.io/<owner>/<repo>, lower-cased as the registry requires."""
    if not re.match(r"^[\w.-]+/[\w.-]+$", repository):
        raise UserError(f"repository {repository!r} is not of the form owner/name")
    return f"{REGISTRY}/{repository.lower()}"


def verify(tag: str, default_branch: str) -> dict[str, str]:
    from mlci.review import report

    version = version_of(tag)
    head = history.resolve("HEAD")
    branch_ref = f"origin/{default_branch}"
    tip = history.resolve(branch_ref)
    if history.git("merge-base", "--is-ancestor", head, tip) is None:
        raise UserError(
            f"tag {tag} points at {head[:8]}, which is not on {branch_ref}: release only "
            "commits that were merged through the gate"
        )
    stale = history.stale_stages()
    if stale:
        stages = ", ".join(stale)
        raise UserError(f"dvc.lock at {tag} is stale ({stages}): this commit's model is unknown")
    # Against itself: no regression to measure, so the gate checks the absolute limits, the
    # baseline and the data contract, with the thresholds committed at this tag.
    verdict = report.compare(head, stale={}).verdict
    if not verdict.passed:
        raise UserError(f"the model at {tag} does not pass the gate: {verdict.summary}")
    outputs = {"version": version, "commit": head}
    repository = os.environ.get("GITHUB_REPOSITORY")
    if repository:
        outputs["image"] = image_name(repository)
    _github_outputs(outputs)
    return outputs


def _github_outputs(values: dict[str, str]) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with Path(target).open("a", encoding="utf-8") as f:
            for key, value in values.items():
                f.write(f"{key}={value}\n")


# --------------------------------------------------------------------------- smoke test


def example_record() -> dict[str, Any]:
    """A valid request record built from the contract: mid-range numbers, first category."""
    record: dict[str, Any] = {}
    for f in contract.spec().features:
        if f.kind == "categorical":
            record[f.name] = f.categories[0]
        else:
            lo, hi = f.minimum or 0.0, f.maximum or (f.minimum or 0.0) + 1.0
            record[f.name] = round((lo + hi) / 2, 3)
    return record


def _request(url: str, body: Any | None = None, timeout: float = 10) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def smoke(base_url: str, wait_seconds: float = 120) -> list[str]:
    """Return what was checked; raise UserError on the first failure."""
    if not base_url.startswith(("http://", "https://")):
        raise UserError(f"--url {base_url!r} must start with http:// or https://")
    base_url = base_url.rstrip("/")
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            status, _ = _request(f"{base_url}/readyz", timeout=5)
            if status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise UserError(f"{base_url}/readyz not ready after {wait_seconds:.0f} s")
        time.sleep(1)
    done = [f"{base_url}/readyz answered 200"]

    status, body = _request(f"{base_url}/predict", {"records": [example_record()]})
    if status != 200:
        raise UserError(f"valid request: expected 200, got {status}: {body[:300]}")
    text = json.dumps(json.loads(body))
    if not any(f'"{label}"' in text for label in contract.spec().classes):
        raise UserError(f"valid request: no known class label in the answer: {body[:300]}")
    done.append("valid record answered 200 with a known label")

    bad = example_record()
    numeric = contract.spec().numeric[0]
    bad[numeric] = "not-a-number"
    status, body = _request(f"{base_url}/predict", {"records": [bad]})
    if not 400 <= status < 500 or numeric not in body:
        raise UserError(
            f"invalid request: expected a 4xx naming {numeric!r}, got {status}: {body[:300]}"
        )
    done.append(f"invalid record answered {status} naming {numeric!r}")
    return done


# --------------------------------------------------------------------------- model card


def model_card(version: str, image: str, digest: str, repository: str) -> str:
    if not re.match(r"^sha256:[0-9a-f]{64}$", digest):
        raise UserError(f"image digest {digest!r} is not sha256:<64 hex>")
    metrics = history.read_json(paths.METRICS) or {}
    slices = history.read_json(paths.SLICES) or {}
    ingest = history.read_json(paths.INGEST_REPORT) or {}
    params = history.read_yaml("params.yaml") or {}
    lock_text = Path("dvc.lock").read_text() if Path("dvc.lock").is_file() else None
    model = metrics.get("model", {})
    baseline = metrics.get("baseline", {})
    ref = f"{image}@{digest}"
    lines = [
        f"# Model card: {repository} {version}",
        "",
        f"Image: `{image}:{version}`  ",
        f"Digest: `{digest}`  ",
        f"Commit: `{history.resolve('HEAD')}`  ",
        f"dvc.lock sha256: `{history.text_digest(lock_text)}`  ",
        f"Training data sha256: `{ingest.get('source_sha256')}` ({ingest.get('rows_out')} rows)",
        "",
        "## Metrics (held-out test set)",
        "",
        "| metric | model | baseline |",
        "|---|---:|---:|",
    ]
    task = metrics.get("task", "classification")
    for m in GATE_METRICS.get(task, GATE_METRICS["classification"]):
        lines.append(f"| {m} | {model.get(m, '—')} | {baseline.get(m, '—')} |")
    # Per slice: macro F1 (classification) or RMSE (regression), as reports/slices.json has it.
    name, key = ("RMSE", "rmse") if task == "regression" else ("macro F1", "f1_macro")
    lines += ["", f"## Slices ({name})", "", f"| slice | n | {name} |", "|---|---:|---:|"]
    for col, values in slices.items():
        for value, m in values.items():
            lines.append(f"| {col} = {value} | {m['n']} | {m.get(key, '—')} |")
    lines += [
        "",
        "## Params",
        "",
        "```yaml",
        json.dumps({k: params.get(k) for k in ("seed", "task", "split", "train")}, indent=2),
        "```",
        "",
        "## Verify the image",
        "",
        "```bash",
        f"cosign verify {ref} \\",
        f"  --certificate-identity-regexp '^https://github.com/{repository}/' \\",
        "  --certificate-oidc-issuer https://token.actions.githubusercontent.com",
        f"gh attestation verify oci://{ref} --repo {repository}",
        "```",
        "",
        "## Roll back",
        "",
        "Deploy the previous release's image tag (listed on the Releases page):",
        "",
        "```bash",
        f"kubectl set image deployment/mlci mlci={image}:<previous-version>",
        "kubectl rollout status deployment/mlci",
        "```",
        "",
        "or `kubectl rollout undo deployment/mlci` for the previous ReplicaSet. A release never",
        "overwrites an older image tag.",
    ]
    text = "\n".join(lines) + "\n"
    files.write_text(Path("reports/release/model_card.md"), text)
    return text
