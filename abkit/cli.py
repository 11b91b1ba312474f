"""The ``abkit`` command: it only reads arguments, validates them and calls one library function."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from abkit.errors import AbkitError, NotebookFailed


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``abkit`` command (subcommands run, params, calibrate, download-data, log)."""
    parser = argparse.ArgumentParser(prog="abkit", description="A/B tests of text classifiers, from notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="validate parameters, execute the notebooks, render HTML reports")
    run.add_argument(
        "--params", action="append", default=[], metavar="FILE", help="YAML params file; repeatable, later files win"
    )
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one parameter; repeatable, wins over files",
    )
    run.add_argument("--run-name", help="output folder name under the output dir (default: a timestamp)")
    run.add_argument(
        "--only", action="append", metavar="NOTEBOOK", help="run only this notebook (e.g. 20_analyze); repeatable"
    )
    run.add_argument("--notebooks", default="notebooks", metavar="DIR", help="notebook folder")
    run.add_argument("--output-dir", default="outputs", metavar="DIR", help="where runs are written")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    par = sub.add_parser("params", help="list every notebook parameter: type, default, allowed values, help")
    par.add_argument("notebook", nargs="*", metavar="NOTEBOOK", help="only these notebooks (e.g. 00_setup or setup)")
    par.add_argument("--notebooks", default="notebooks", metavar="DIR", help="notebook folder")

    cal = sub.add_parser("calibrate", help="simulate many A/A and A/B tests; report error rates")
    cal.add_argument("--sims", type=int, default=2000, help="number of simulated experiments")
    cal.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    cal.add_argument("--looks", type=int, default=20, help="interim looks for the sequential checks")
    cal.add_argument("--alpha", type=float, default=0.05, help="significance level")
    cal.add_argument(
        "--decision-sims",
        type=int,
        default=40,
        metavar="N",
        help="experiments per setting run through the log writer, the SQL reduction and decide "
        "(A/A, A/B and sparse labels; about 0.5 s each; 0 skips)",
    )
    cal.add_argument("--json", action="store_true", help="print one JSON object")

    data = sub.add_parser("download-data", help="download the UCI sentiment sentences and verify them")
    data.add_argument(
        "--dest",
        default=str(Path.home() / ".cache" / "abkit" / "data"),
        metavar="DIR",
        help="target folder (default: ~/.cache/abkit/data)",
    )
    data.add_argument(
        "--sha256", default=None, help="expected SHA-256 of the archive (default: the published digest pinned in abkit)"
    )

    log = sub.add_parser("log", help="maintain a prediction log")
    log_sub = log.add_subparsers(dest="log_command", required=True)
    comp = log_sub.add_parser(
        "compact",
        help="rewrite appended and foreign files into the fast layout "
        "(deduplicated, clustered, marked); safe while writers append",
    )
    comp.add_argument("root", metavar="LOG", help="the PredictionLog root (with predictions/ and labels/)")
    comp.add_argument("--experiment", default=None, help="only this experiment (default: all)")
    comp.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        default="duckdb",
        help="where it runs: DuckDB in this process (default), or Spark (a local session; on a cluster call "
        "abkit.log.compact.compact with your SparkSession) for logs one machine cannot hold",
    )
    comp.add_argument("--memory-limit", default=None, metavar="SIZE", help="DuckDB memory cap, e.g. 2GB")
    comp.add_argument("--json", action="store_true", help="print one JSON object per experiment")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``abkit`` command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        commands = {"run": _run, "params": _params, "calibrate": _calibrate, "download-data": _download, "log": _log}
        return commands[args.command](args)
    except NotebookFailed as exc:
        print(
            f"abkit: {exc}\nThe partial report is in the run folder; open its index.html to see where it broke.",
            file=sys.stderr,
        )
        return 1
    except AbkitError as exc:
        print(f"abkit: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from abkit import params as P
    from abkit.report import discover_notebooks, run_pipeline, select_notebooks

    run_name = P.check_run_name(args.run_name or datetime.now().strftime("%Y%m%d-%H%M%S"))
    every = discover_notebooks(args.notebooks)
    specs = {path.stem: P.notebook_parameters(path) for path in every}
    known = P.known_parameters(every)
    merged = P.validate(P.merge_params(args.params, args.param), known)
    chosen = select_notebooks(every, args.only)
    P.check_together(P.effective_values(merged, [specs[path.stem] for path in chosen]))
    summary = run_pipeline(
        merged,
        run_name=run_name,
        notebooks=chosen,
        specs=specs,
        output_root=args.output_dir,
        progress=not args.no_progress,
        params_files=args.params,
    )
    print(f"abkit: run {run_name} finished; open {Path(summary.run_dir) / 'index.html'}")
    return 0


def _params(args: argparse.Namespace) -> int:
    from abkit import params as P
    from abkit.report import discover_notebooks, select_notebooks

    chosen = select_notebooks(discover_notebooks(args.notebooks), args.notebook)
    print("\n\n".join(P.describe(P.notebook_parameters(path), path.stem) for path in chosen))
    print("\nSet them in a params file (name: value) or with -p name=value; run_dir is set by abkit run.")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from abkit.calibrate import calibrate, calibrate_decisions

    if args.sims < 1:
        raise AbkitError(f"--sims {args.sims} must be a positive number of simulations, e.g. --sims 10000.")
    if args.decision_sims < 0:
        raise AbkitError(f"--decision-sims {args.decision_sims} must be >= 0 (0 skips the real-path experiments).")
    result = calibrate(args.sims, seed=args.seed, looks=args.looks, alpha=args.alpha)
    if args.decision_sims:
        result |= calibrate_decisions(args.decision_sims, seed=args.seed, alpha=args.alpha)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in sorted(result.items()):
            print(f"{key:>24}: {value}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from abkit.data import download_uci

    path = download_uci(args.dest, **({"sha256": args.sha256} if args.sha256 else {}))
    print(f"abkit: UCI sentiment sentences ready; use them with: export ABKIT_DATA_DIR={path}")
    return 0


def _log(args: argparse.Namespace) -> int:
    from abkit.log.compact import compact

    for report in compact(args.root, args.experiment, engine=args.engine, memory_limit=args.memory_limit):
        if args.json:
            print(json.dumps(report.__dict__, sort_keys=True))
        else:
            print(
                f"abkit: {report.experiment}: {report.predictions} predictions and {report.labels} labels compacted, "
                f"{report.dropped_predictions} repeated predictions dropped, {report.consumed} files absorbed, "
                f"{report.removed} files removed"
                + (" (ids share 64-bit keys: read by string)" if report.collided else "")
            )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
