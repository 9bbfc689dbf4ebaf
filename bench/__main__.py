"""Benchmark: editgate beside a bare pass-through proxy, 1,000 in-flight edits, image-path micro-figures, policy
decision time.

The upstream (`editgate emulate` with render caching: it answers at once with a 1024x1024 PNG as b64_json),
editgate (`editgate serve`) and the bare proxy (`python -m bench.bare_proxy`) run as separate processes, so
each process's CPU and memory are its own. Prints a table and writes JSON. `--smoke` runs tiny counts (for
CI); numbers are never asserted anywhere. `--profile` samples each arm's server with py-spy during an extra
concurrency-8 phase (not the measured one) and writes the collapsed stacks beside the JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from bench.arms import measure_all
from bench.inflight import in_flight
from bench.micro import decision_us, micro
from bench.procs import services
from bench.report import render, targets
from bench.workers import workers_throughput

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"


def photo_1024() -> tuple[bytes, bytes]:
    """A 1024x1024 photographic PNG (~1.2 MB) and its helmet mask, from the fixtures."""
    src = Image.open(FIXTURES / "astronaut.png").convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS)
    mask = Image.open(FIXTURES / "astronaut_helmet_mask.png").resize((1024, 1024), Image.Resampling.NEAREST)
    a, b = io.BytesIO(), io.BytesIO()
    src.save(a, "PNG")
    mask.save(b, "PNG")
    return a.getvalue(), b.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for CI")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--profile", action="store_true", help="py-spy each arm's server at concurrency 8")
    args = parser.parse_args()
    image, mask = photo_1024()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_at_start": os.getloadavg()},
        "photo": {"size": "1024x1024", "png_bytes": len(image), "mask_bytes": len(mask)},
        "smoke": args.smoke,
    }  # fmt: skip
    results["micro_ms"] = micro(image, mask, args.smoke)
    results["decision_us"] = decision_us(args.smoke)
    profile_dir = args.out.parent if args.profile else None
    with tempfile.TemporaryDirectory() as tmp, services(Path(tmp), args.out.parent) as svc:
        results["arms"] = measure_all(svc, image, mask, args.smoke, profile_dir)
        results["in_flight"] = in_flight(svc, image, mask, args.smoke)
        results["workers"] = workers_throughput(svc, Path(tmp), image, mask, args.smoke)
    results["targets"] = targets(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(render(results))
    w = results["workers"]
    if "runs" in w:
        one, two = (w["runs"][n]["throughput_rps"] for n in ("1", "2"))
        errors = "/".join(str(w["runs"][n]["errors"]) for n in ("1", "2"))
        print(f"\nserve --workers (PostgreSQL, pass-through, c=8): 1 worker {one:.1f} edits/s, "
              f"2 workers {two:.1f} edits/s ({w['ratio_2_to_1']}x), errors {errors}")  # fmt: skip
    else:
        print(f"\nserve --workers: {w['skipped']}")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
