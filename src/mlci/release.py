"""Release steps that hold logic, so the release workflow only calls them.

* ``verify``: the tag is ``vX.Y.Z``, points at a commit on the default branch, its ``dvc.lock``
  is up to date, and its committed metrics pass the gate. Otherwise nothing is built.
* ``smoke``: a running service (the image under test, or ``make serve``) answers ``/readyz``,
  a valid request (built from the contract) with a known label and its probabilities, or for
  regression a finite number, and an invalid one with a 4xx naming the field.
* ``model_card``: the GitHub Release notes: metrics, slices, the training split's digest (the one
  the model records), params, image digest, how to verify the signature and how to roll back
  (by digest, as ``deploy/k8s/kustomization.yaml`` pins it).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from mlci import contract, files, history, paths
from mlci.errors import UserError
from mlci.tasks import GATE_METRICS, SLICE_METRIC, label, task_of

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
    """A valid request record built from the contract: mid-range numbers, first category (any
    text for an open categorical feature)."""
    from mlci.serving.api_models import example_record as from_contract

    return from_contract(contract.spec())


def invalid_field() -> tuple[str, Any]:
    """A field of the contract and a value the service must refuse with a 4xx naming it: text
    for a number, an unknown category for a closed set, a number for an open set."""
    spec = contract.spec()
    if spec.numeric:
        return spec.numeric[0], "not-a-number"
    closed = [f.name for f in spec.features if f.kind == "categorical" and f.categories]
    if closed:
        return closed[0], "not-a-category"
    return spec.features[0].name, 12345


def check_answer(body: str) -> str:
    """What a valid answer showed, per task; raises UserError when it is not one."""
    spec = contract.spec()
    try:
        (pred,) = json.loads(body)["predictions"]
        if not isinstance(pred, dict):
            raise TypeError("a prediction is not an object")
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"valid request: not one prediction ({err}): {body[:300]}") from None
    if spec.task == "regression":
        value = pred.get("prediction")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"valid request: no numeric prediction in the answer: {body[:300]}")
        if not math.isfinite(value):
            raise UserError(f"valid request: the prediction is not finite: {body[:300]}")
        return f"valid record answered 200 with a numeric prediction ({value:.6g})"
    proba = pred.get("probabilities")
    if pred.get("label") not in spec.classes or not isinstance(proba, dict):
        raise UserError(f"valid request: no known class label in the answer: {body[:300]}")
    numbers = all(isinstance(p, int | float) for p in proba.values())
    if set(proba) != set(spec.classes) or not numbers or abs(sum(proba.values()) - 1) > 1e-6:
        raise UserError(f"valid request: probabilities are not one per class: {body[:300]}")
    return "valid record answered 200 with a known label"


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
    done.append(check_answer(body))

    field, value = invalid_field()
    bad = {**example_record(), field: value}
    status, body = _request(f"{base_url}/predict", {"records": [bad]})
    if not 400 <= status < 500 or field not in body:
        raise UserError(
            f"invalid request: expected a 4xx naming {field!r}, got {status}: {body[:300]}"
        )
    done.append(f"invalid record answered {status} naming {field!r}")
    return done


# --------------------------------------------------------------------------- model card


def model_card(version: str, image: str, digest: str, repository: str) -> str:
    if not re.match(r"^sha256:[0-9a-f]{64}$", digest):
        raise UserError(f"image digest {digest!r} is not sha256:<64 hex>")
    metrics = history.read_json(paths.METRICS) or {}
    slices = history.read_json(paths.SLICES) or {}
    ingest = history.read_json(paths.INGEST_REPORT) or {}
    meta = history.read_json(paths.MODEL_META) or {}
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
        # The training split the model was fitted on, as the model itself records it.
        f"Training data sha256: `{meta.get('train_data_sha256')}` "
        f"({meta.get('train_rows')} rows, `{paths.TRAIN}`)  ",
        f"Source: `{ingest.get('source')}` sha256 `{ingest.get('source_sha256')}` "
        f"({ingest.get('rows_read')} rows read, {ingest.get('rows_out')} after cleaning)",
        "",
        "## Metrics (held-out test set)",
        "",
        "| metric | model | baseline |",
        "|---|---:|---:|",
    ]
    task = task_of(metrics) or "classification"
    for m in GATE_METRICS[task]:
        lines.append(f"| {m} | {model.get(m, '—')} | {baseline.get(m, '—')} |")
    # Per slice: the task's slice metric, as reports/slices.json has it.
    key = SLICE_METRIC[task][0]
    name = label(key)
    lines += ["", f"## Slices ({name})", "", f"| slice | n | {name} |", "|---|---:|---:|"]
    for col, values in slices.items():
        for value, m in values.items():
            lines.append(f"| {col} = {value} | {m['n']} | {m.get(key, '—')} |")
    lines += [
        "",
        "## Params",
        "",
        "```yaml",
        yaml.safe_dump(
            {k: params[k] for k in ("seed", "task", "split", "train") if k in params},
            sort_keys=False,
        ).rstrip(),
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
        "## Deploy or roll back, by digest",
        "",
        "Pin the image by digest, as `deploy/k8s/kustomization.yaml` does: a digest names exactly",
        "the image that was signed and attested. To roll back, pin the previous release's digest",
        "(its model card, on the Releases page):",
        "",
        "```bash",
        f"(cd deploy/k8s && kustomize edit set image ghcr.io/OWNER/REPO={ref})",
        "kubectl apply -k deploy/k8s && kubectl rollout status deployment/mlci",
        "```",
        "",
        "In a hurry, `kubectl rollout undo deployment/mlci` returns to the previous ReplicaSet;",
        "then pin its digest in kustomization.yaml, or the next apply undoes the undo.",
        f"`make push-image` never moves a version tag: `{image}:{version}` stays this digest.",
    ]
    text = "\n".join(lines) + "\n"
    files.write_text(Path("reports/release/model_card.md"), text)
    return text


def github_release(tag: str, card: Path = Path("reports/release/model_card.md")) -> str:
    """Publish the GitHub Release of ``tag`` (already pushed) with the model card as its notes,
    through the project's GitHub client (no ``gh``). Returns the release's web URL."""
    from mlci import github_repo
    from mlci.github import run_url

    if not card.is_file():
        raise UserError(f"{card} not found: run `make model-card` first")
    repo = github_repo.connect(run_url())
    return repo.create_release(tag, card.read_text(encoding="utf-8"))
