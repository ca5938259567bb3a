"""Image benchmark: unpacked size and start time (``docker run`` to ``/readyz`` answering 200)
of container images, measured side by side, alternating, on one Docker engine.

    uv run --frozen --no-sync python bench/image_bench.py IMAGE:TAG [IMAGE:TAG ...] [--runs 5]

Each image runs ``--runs`` times, the images taking turns (a busy minute on a shared machine
hits all of them alike), with plain ``docker run`` options (as ``make smoke-image`` runs it):
the read-only root filesystem of deploy/k8s needs the image's own folders, which an older image
may lack. Reports the median and every run, the load average before and after, and writes
``bench/results/image_start.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from mlci.serving import docker, image_run

OUT = Path("bench/results/image_start.json")


def start_once(image: str) -> float:
    with image_run.running(image, []) as c:
        return c.seconds_to_ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs: dict[str, list[float]] = {image: [] for image in args.images}
    for _ in range(args.runs):
        for image in args.images:
            runs[image].append(round(start_once(image), 2))
    results = {
        image: {
            "size_mb": round(docker.size_bytes(image) / 1e6),
            "base_is_standin": docker.is_standin(image),
            "start_to_readyz_median_s": round(statistics.median(times), 2),
            "start_to_readyz_runs_s": times,
        }
        for image, times in runs.items()
    }
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "images": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print("| image | size (MB, unpacked) | start to /readyz, median (s) | runs (s) |")
    print("|---|---:|---:|---|")
    for image, r in results.items():
        runs_text = ", ".join(f"{t:.2f}" for t in r["start_to_readyz_runs_s"])
        print(f"| {image} | {r['size_mb']} | {r['start_to_readyz_median_s']} | {runs_text} |")


if __name__ == "__main__":
    main()
