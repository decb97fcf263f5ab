"""The `vadlab` command. Bad input (unknown method, preset or key; malformed data), a run folder in use and a
diverged training exit with status 2; a training stopped by SIGINT or SIGTERM exits 130 or 143 after saving a
checkpoint it resumes from (`--resume`)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from pathlib import Path

from vadlab.errors import Interrupted, VadlabError, VadlabWarning


def _cmd_list(args) -> int:
    from vadlab.registry import get_spec, list_methods, ordered_presets

    names = list_methods()
    if not names:
        print("no methods registered yet")
    for name in names:
        spec = get_spec(name)
        ablations = f"  ablations: {', '.join(spec.cls.ablations)}" if spec.cls.ablations else ""
        print(f"{name:12s} presets: {', '.join(ordered_presets(spec))}{ablations}  {spec.description}")
    return 0


def _cmd_synth(args) -> int:
    from vadlab.data.synthetic import synthesize

    layout = synthesize(args.root, args.preset, seed=args.seed, overwrite=args.overwrite)
    _print_summary(layout)
    return 0


def _cmd_import(args) -> int:
    from vadlab.data.importers import import_dataset

    layout = import_dataset(args.kind, args.src, args.dst, overwrite=args.overwrite)
    _print_summary(layout)
    return 0


def _cmd_check(args) -> int:
    from vadlab.data.layout import check_layout

    layout = check_layout(args.root)
    _print_summary(layout)
    print("ok")
    return 0


def _cmd_flow(args) -> int:
    import time

    from vadlab.data.flow import flow_for_videos
    from vadlab.data.layout import load_layout

    size = None
    if args.size:
        try:
            height, width = (int(x) for x in args.size.lower().split("x"))
        except ValueError:
            raise VadlabError(f"--size {args.size!r}: give the model's frame size as HxW, e.g. 64x96") from None
        size = (height, width)
    layout = load_layout(args.root)
    videos = [v for split in args.splits.split(",") for v in layout.split(split)]
    t0 = time.perf_counter()
    flow_for_videos(videos, size, args.method, flow_root=args.flow_root, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    frames = sum(len(v) - 1 for v in videos)
    print(f"{args.method} flow of {frames} frames in {len(videos)} videos ready in {seconds:.1f} s "
          f"({frames / max(seconds, 1e-9):.1f} frames/s, cached ones included)")
    return 0


def _print_summary(layout) -> None:
    print(f"{layout.root}")
    for split, row in layout.summary().items():
        print(f"  {split:9s} videos {row['videos']:4d}  frames {row['frames']:7d}  "
              f"anomalous {row['anomalous_frames']:6d}  with masks {row['videos_with_masks']}")


def _out_folder(path: str) -> str:
    """`--out` must name a folder: an existing file there (or above it) exits 2 instead of a traceback."""
    for p in (Path(path), *Path(path).parents):
        if p.exists():
            if not p.is_dir():
                raise VadlabError(f"--out {path}: {p} is a file; --out names a folder")
            break
    return path


def _cmd_train(args) -> int:
    from vadlab import engine
    from vadlab.config import parse_set_args
    from vadlab.registry import create_method

    _out_folder(args.out)

    overrides = parse_set_args(args.set)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    ablations = list(args.ablation or []) + (["no_memory"] if args.no_memory else [])
    method = create_method(args.method, args.preset, ablations=ablations, **overrides)
    history = engine.fit(method, args.data, args.out, seed=args.seed, device=args.device, resume=args.resume,
                         progress=not args.quiet, threads=args.threads)
    if engine.world()[0] != 0:  # under torchrun, rank 0 reports and evaluates
        return 0
    print(f"trained {args.method} ({args.preset}) for {len(history)} epochs into {args.out}")
    if args.evaluate:
        return _report(engine.evaluate_run(args.out, args.data, device=args.device, progress=not args.quiet,
                                           threads=args.threads))
    return 0


def _cmd_evaluate(args) -> int:
    from vadlab import engine
    from vadlab.config import parse_set_args

    return _report(engine.evaluate_run(args.run, args.data, device=args.device, progress=not args.quiet,
                                       overrides=parse_set_args(args.set), threads=args.threads))


def _report(report: dict) -> int:
    base = report["baseline_frame_difference"]
    print(f"{report['method']}: micro AUC {report['micro_auc']:.4f}  macro {report['macro_auc']:.4f}  "
          f"EER {report['eer']:.4f}  (frame-difference baseline {base['micro_auc']:.4f}, "
          f"{base['on_method_frames']['micro_auc']:.4f} on the same frames); "
          f"{report['frames_left_out']} frames left out")
    return 0


def _cmd_baseline(args) -> int:
    from vadlab.reports import baseline_report

    _out_folder(args.out)
    report = baseline_report(args.data, args.out, size=args.size)
    print(f"frame-difference baseline: micro AUC {report['micro_auc']:.4f}  macro {report['macro_auc']:.4f}  "
          f"EER {report['eer']:.4f} -> {Path(args.out) / 'metrics.json'}")
    return 0


def _cmd_demo(args) -> int:
    from vadlab.reports import demo

    _out_folder(args.out)
    demo(args.data, args.out, method=args.method, preset=args.preset, train=not args.no_train)
    return 0


def _cmd_report(args) -> int:
    from vadlab.reports import read_notebook_scraps, run_notebook

    params = {}
    for key, value in args.param or []:
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    if not Path(args.notebook).is_file():
        raise VadlabError(f"{args.notebook}: no such notebook")
    _out_folder(args.out)
    from papermill.exceptions import PapermillExecutionError

    try:
        executed = run_notebook(args.notebook, args.out, params, progress=True)
    except PapermillExecutionError as exc:  # name the failing cell and its error, not a kernel traceback
        raise VadlabError(f"{args.notebook}: cell {exc.exec_count} failed: {exc.ename}: {exc.evalue}") from None
    print(f"{executed}")
    for name, value in read_notebook_scraps(executed).items():
        print(f"  {name}: {value}")
    return 0


def _cmd_curves(args) -> int:
    from vadlab.reports import score_curves

    aucs = score_curves(args.runs, args.out, data=args.data)
    videos = list(next(iter(aucs.values())))
    print("| run | " + " | ".join(videos) + " |")
    for label, per_video in aucs.items():
        print(f"| {label} | " + " | ".join(f"{per_video[v]:.3f}" for v in videos) + " |")
    print(f"wrote {args.out}")
    return 0


def _cmd_compare(args) -> int:
    from vadlab.reports import compare_runs

    if args.out:
        _out_folder(args.out)
    compare_runs(args.groups, args.out, metric=args.metric)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vadlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="registered methods and their presets").set_defaults(func=_cmd_list)

    data = sub.add_parser("data", help="datasets: synthesise, import, check, optical flow")
    data = data.add_subparsers(dest="data_cmd", required=True)
    p = data.add_parser("synth", help="write the synthetic walkway dataset")
    p.add_argument("root")
    p.add_argument("--preset", default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_synth)
    p = data.add_parser("import", help="convert an official download to the common layout")
    p.add_argument("kind", help="ucsd | avenue | shanghaitech | preprocessed | auto")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_import)
    p = data.add_parser("check", help="validate a dataset root; exit 2 on any problem")
    p.add_argument("root")
    p.set_defaults(func=_cmd_check)
    p = data.add_parser("flow", help="compute and cache the optical flow of a dataset (MAAM-Net's motion target)")
    p.add_argument("root")
    p.add_argument("--method", default="dis", choices=["dis", "farneback", "files"])
    p.add_argument("--size", help="also cache it resized to the model's HxW (vectors scaled), e.g. 64x96")
    p.add_argument("--splits", default="training,testing", help="comma-separated splits (default training,testing)")
    p.add_argument("--flow-root", help="with --method files: FLOW_ROOT/<split>/<video>/*.flo")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_flow)

    p = sub.add_parser("train", help="train a method")
    p.add_argument("method")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="cpu")
    p.add_argument("--epochs", type=int)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    p.add_argument("--ablation", action="append", metavar="NAME",
                   help="a named ablation the method declares (`vadlab list` shows them; repeatable)")
    p.add_argument("--no-memory", action="store_true", help="shorthand for --ablation no_memory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--evaluate", action="store_true", help="evaluate on the test split after training")
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores this process may use; "
                                               "$VADLAB_THREADS or $OMP_NUM_THREADS also set it)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="score the test split with a trained run; writes metrics.json")
    p.add_argument("run")
    p.add_argument("--data")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="test-time override (gamma, test_update, score_lambda); writes metrics[KEY=VALUE].json")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores this process may use; "
                                               "$VADLAB_THREADS or $OMP_NUM_THREADS also set it)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("baseline", help="frame-difference baseline metrics of a dataset")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=64)
    p.set_defaults(func=_cmd_baseline)

    p = sub.add_parser("report", help="run a notebook headlessly with papermill into a report folder")
    p.add_argument("notebook")
    p.add_argument("--out", required=True)
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="notebook parameter (JSON value, else a string)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("compare", help="side-by-side metrics of evaluated runs: GROUP is a folder of runs or "
                                       "LABEL=DIR1,DIR2 (seeds averaged)")
    p.add_argument("groups", nargs="+")
    p.add_argument("--out")
    p.add_argument("--metric", default="micro_auc")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("curves", help="per-video score curves of evaluated runs (LABEL=RUN) beside the "
                                      "frame-difference "
                                      "baseline, with each run's AUC in each video")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", required=True, help="PNG file")
    p.add_argument("--data", help="dataset root (default: the first run's)")
    p.set_defaults(func=_cmd_curves)

    p = sub.add_parser("demo", help="the demo: synthesise, check, baseline, train and evaluate a method")
    p.add_argument("--method", default="mnad_pred", help="any registered method (`vadlab list`)")
    p.add_argument("--data", default="data/synthetic-default")
    p.add_argument("--out", default="reports/demo")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--no-train", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def _messages_for_our_warnings(show):
    """`warnings.showwarning` that prints a VadlabWarning as a message (not a source location), others as `show`."""

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, VadlabWarning):
            print(f"vadlab: warning: {message}", file=sys.stderr if file is None else file)
        else:
            show(message, category, filename, lineno, file, line)

    return show_warning


def _resume_command(argv: list[str]) -> str:
    """The command that continues an interrupted `train`: the same arguments with --resume."""
    prefix = "torchrun ... -m vadlab.cli" if int(os.environ.get("WORLD_SIZE", 1)) > 1 else "vadlab"
    return f"{prefix} {shlex.join(argv)}" + ("" if "--resume" in argv else " --resume")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _messages_for_our_warnings(warnings.showwarning)
        try:
            return args.func(args)
        except Interrupted as exc:
            print(f"vadlab: {exc}", file=sys.stderr)
            if int(os.environ.get("RANK", 0)) == 0:
                print(f"resume with: {_resume_command(argv)}", file=sys.stderr)
            return exc.exit_status
        except VadlabError as exc:
            print(f"vadlab: error: {exc}", file=sys.stderr)
            return exc.exit_status
        except KeyboardInterrupt:  # Ctrl-C outside a training step (loading, scoring): no traceback
            print("vadlab: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
