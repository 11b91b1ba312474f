"""Wall time of the smoke run and of ``make report``'s default run, against a bare kernel start.

Targets (issue 2): default run ≤ 180 s and smoke run ≤ 60 s on 2 cores with a warm environment.
The baseline, measured in the same run, is papermill executing a one-cell notebook (kernel start-up),
so the ratios say how much of each run is real work.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ABKIT = [sys.executable, "-m", "abkit"]


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main(quick: bool) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="abkit-bench-"))
    try:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "abkit", "display_name": "abkit", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell("x = 1")]
        nbformat.write(nb, str(tmp / "empty.ipynb"))
        kernel = _timed(
            [
                sys.executable,
                "-m",
                "papermill",
                str(tmp / "empty.ipynb"),
                str(tmp / "o.ipynb"),
                "-k",
                "abkit",
                "--no-progress-bar",
            ]
        )
        out = ["--output-dir", str(tmp / "outputs"), "--no-progress"]
        smoke = _timed([*ABKIT, "run", "--params", "params/smoke.yaml", "--run-name", "smoke", *out])
        result = {
            "kernel_start_s": round(kernel, 2),
            "smoke_s": round(smoke, 2),
            "smoke_over_kernel_start": round(smoke / kernel, 1),
        }
        if not quick:
            default = _timed([*ABKIT, "run", "--params", "params/default.yaml", "--run-name", "default", *out])
            result |= {"default_s": round(default, 2), "default_over_kernel_start": round(default / kernel, 1)}
        missed = [name for name, limit in (("smoke_s", 60), ("default_s", 180)) if result.get(name, 0) > limit]
        result["targets"] = {"smoke_s": "<= 60", "default_s": "<= 180", "missed": missed}
        print(json.dumps(result))
        return 1 if missed and not quick else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main("--quick" in sys.argv))
