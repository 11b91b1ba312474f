"""Run every ``benchmarks/bench_*.py`` script, collect their JSON and fail if any target is missed.

Usage: ``python benchmarks/run_all.py [--quick] [NAME ...]`` (``make bench`` runs them all).
Each script prints one JSON object last on stdout and exits non-zero when it misses a target.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _last_json(stdout: str) -> dict | None:
    """The last JSON object a script printed (on one line or pretty-printed over several)."""
    text = stdout.rstrip()
    start = len(text)
    while (start := text.rfind("{", 0, start)) != -1:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            continue
    return None


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    wanted = [a for a in argv if not a.startswith("--")]
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not wanted or p.stem.removeprefix("bench_") in wanted)
    results, failed = {}, []
    for script in scripts:
        start = time.perf_counter()
        print(f"== {script.name}", flush=True)
        proc = subprocess.run(
            [sys.executable, str(script), *(["--quick"] if quick else [])], capture_output=True, text=True
        )
        results[script.stem] = _last_json(proc.stdout) or {"error": proc.stderr[-2000:]}
        results[script.stem]["wall_s"] = round(time.perf_counter() - start, 1)
        print(json.dumps(results[script.stem], indent=2), flush=True)
        if proc.returncode != 0:
            failed.append(script.stem)
            print(proc.stderr[-3000:], file=sys.stderr)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "cpus": __import__("os").cpu_count(),
        "quick": quick,
    }
    (out / "latest.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"results in {out / 'latest.json'}; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
