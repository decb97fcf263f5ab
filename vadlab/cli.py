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

from vadlab.errors import ConfigError, DataError, Interrupted, VadlabError, VadlabWarning, no_checkpoint


def _cmd_list(args) -> int:
    from vadlab.registry import catalogue  # no method is imported: `vadlab list` answers at once

    methods = catalogue()
    if not methods:
        print("no methods registered yet")
        return 0
    rows = [(name, ", ".join(m["presets"]), m["description"]) for name, m in methods.items()]
    widths = [max(len(r[i]) for r in rows + [("method", "presets", "")]) for i in range(2)]
    print(f"{'method':{widths[0]}s}  {'presets':{widths[1]}s}  description")
    for (name, presets, description), m in zip(rows, methods.values()):
        print(f"{name:{widths[0]}s}  {presets:{widths[1]}s}  {description}")
        if m["ablations"]:
            print(f"{'':{widths[0]}s}  ablations: {', '.join(m['ablations'])}")
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


def _cmd_download(args) -> int:
    from vadlab.data.download import download_dataset

    if args.retries < 0:
        raise VadlabError(f"--retries {args.retries}: give 0 or more")
    layout = download_dataset(args.name, args.root, urls=args.url, archives=args.archive, sha256=args.sha256,
                              verify=not args.no_verify, retries=args.retries, delete_archives=args.delete_archive,
                              progress=not args.quiet)
    for item in layout.meta.get("download", []):
        print(f"sha256 {item['sha256']}  {item['file']} ({'verified' if item['verified'] else 'NOT verified'})")
    _print_summary(layout)
    print("ok")
    return 0


def _cmd_split(args) -> int:
    from vadlab.data import splits

    if args.protocol == "kfold":
        layout = splits.kfold_split(args.root, args.out, k=args.k, fold=args.fold, unit=args.unit, margin=args.margin,
                                    overwrite=args.overwrite)
    elif args.protocol == "rate":
        layout = splits.rate_split(args.root, args.out, rate=args.rate, seed=args.seed, margin=args.margin,
                                   overwrite=args.overwrite)
    else:
        layout = splits.pool_split(args.root, args.out, types=[t for t in args.types.split(",") if t],
                                   overwrite=args.overwrite)
    _print_summary(layout)
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


# --- checks that come before the imports of a command (torch, scikit-learn, OpenCV: seconds), with the messages the
# code below them gives, so a mistyped path answers at once
def _run_folder(run: str) -> None:
    if not (Path(run) / "checkpoint.pt").exists():
        raise no_checkpoint(run)


def _data_root(root: str | None) -> None:
    if root is not None and not Path(root).exists():
        raise DataError(f"{root}: dataset root does not exist")


def _out_folder(path: str) -> str:
    """`--out` must name a folder: an existing file there (or above it) exits 2 instead of a traceback."""
    for p in (Path(path), *Path(path).parents):
        if p.exists():
            if not p.is_dir():
                raise VadlabError(f"--out {path}: {p} is a file; --out names a folder")
            break
    return path


def _cmd_train(args) -> int:
    from vadlab.registry import check_name

    check_name(args.method, args.preset)  # before the imports below (seconds): a typo answers at once
    _out_folder(args.out)

    from vadlab import engine, guards
    from vadlab.config import parse_set_args
    from vadlab.registry import create_method

    overrides = parse_set_args(args.set)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    ablations = list(args.ablation or []) + (["no_memory"] if args.no_memory else [])
    method = create_method(args.method, args.preset, ablations=ablations, **overrides)
    if args.evaluate and engine.world()[0] == 0:
        guards.check_test_split(method, args.data)  # a broken test frame fails now, not after the training
    history = engine.fit(method, args.data, args.out, seed=args.seed, device=args.device, resume=args.resume,
                         progress=not args.quiet, threads=args.threads)
    if engine.world()[0] != 0:  # under torchrun, rank 0 reports and evaluates
        return 0
    print(f"trained {args.method} ({args.preset}) for {len(history)} epoch{'' if len(history) == 1 else 's'} "
          f"into {args.out}")
    if args.evaluate:
        return _report(engine.evaluate_run(args.out, args.data, device=args.device, progress=not args.quiet,
                                           threads=args.threads))
    return 0


def _cmd_evaluate(args) -> int:
    _run_folder(args.run)
    _data_root(args.data)
    from vadlab import engine
    from vadlab.config import parse_set_args

    overrides = parse_set_args(args.set)
    code = _report(engine.evaluate_run(args.run, args.data, device=args.device, progress=not args.quiet,
                                       overrides=overrides, threads=args.threads))
    print(f"wrote {engine.metrics_file(args.run, overrides)}")
    return code


def _report(report: dict) -> int:
    base = report["baseline_frame_difference"]
    print(f"{report['method']}: micro AUC {report['micro_auc']:.3f}  macro {report['macro_auc']:.3f}  "
          f"EER {report['eer']:.3f}  (frame-difference baseline {base['micro_auc']:.3f}, "
          f"{base['on_method_frames']['micro_auc']:.3f} on the same frames); "
          f"{report['frames_left_out']} frames left out")
    return 0


def _cmd_score(args) -> int:
    _run_folder(args.run)
    if not Path(args.video).expanduser().exists():
        raise DataError(f"{args.video}: no such video file or folder of frames")
    if args.out:
        _out_folder(args.out)
    from vadlab.score import describe, score_video

    summary = score_video(args.run, args.video, args.out, threshold=args.threshold, stream=args.stream,
                          write_video=not args.no_video, data=args.data, device=args.device, threads=args.threads,
                          progress=not args.quiet)
    print(describe(summary))
    print(f"wrote {summary['out']}: {', '.join(summary['outputs'])}")
    if summary["stopped"]:
        print(f"vadlab: {summary['stopped']}", file=sys.stderr)
    return 0


def _cmd_baseline(args) -> int:
    _data_root(args.data)
    _out_folder(args.out)
    from vadlab.reports import baseline_report

    report = baseline_report(args.data, args.out, size=args.size)
    print(f"frame-difference baseline: micro AUC {report['micro_auc']:.3f}  macro {report['macro_auc']:.3f}  "
          f"EER {report['eer']:.3f} -> {Path(args.out) / 'metrics.json'}")
    return 0


def _cmd_demo(args) -> int:
    from vadlab.registry import catalogue, check_name

    for name in args.method or catalogue():
        check_name(name, args.preset)  # before the imports below (seconds)
    _out_folder(args.out)
    from vadlab.reports import demo

    records = demo(args.data, args.out, methods=args.method, preset=args.preset, runs=args.runs,
                   inspect=not args.no_inspect, epochs=args.epochs, device=args.device, jobs=args.jobs)
    return 1 if any(r["status"] != "ok" for r in records) else 0


def _cmd_report(args) -> int:
    for notebook in args.notebooks:
        if not Path(notebook).is_file():
            raise VadlabError(f"{notebook}: no such notebook")
    from vadlab import guards
    from vadlab.reports import _defaults, report_notebooks

    params = {}
    for key, value in args.param or []:
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    declared: set[str] = set()
    for notebook in args.notebooks:
        guards.check_notebook(notebook)  # a file nbformat cannot read exits 2
        declared |= set(_defaults(Path(notebook)))
    unknown = sorted(set(params) - declared)
    if unknown:
        raise VadlabError(f"-p {', '.join(unknown)}: no such parameter in {', '.join(args.notebooks)} "
                          f"(their parameters: {', '.join(sorted(declared))})")
    if args.name and len(args.notebooks) > 1:
        raise VadlabError("--name names one report; give one notebook with it")
    _out_folder(args.out)
    records = report_notebooks(args.notebooks, args.out, params, names=[args.name] if args.name else None,
                               progress=True, jobs=args.jobs)
    failed = [r for r in records if r["status"] != "ok"]
    print(f"index: {Path(args.out) / 'index.html'}")
    for r in failed:
        print(f"vadlab: report {r['name']} failed at cell {r.get('cell')}: {r.get('error')}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_curves(args) -> int:
    for item in args.runs:
        label, sep, folder = item.partition("=")
        folder = Path(folder if sep else label)
        if not (folder / "run.json").exists() or not (folder / "scores.npz").exists():
            raise VadlabError(f"{folder}: not an evaluated run (needs run.json and scores.npz; run `vadlab evaluate`)")
    _data_root(args.data)
    from vadlab.reports import score_curves

    aucs = score_curves(args.runs, args.out, data=args.data)
    videos = list(next(iter(aucs.values())))
    print("| run | " + " | ".join(videos) + " |")
    for label, per_video in aucs.items():
        print(f"| {label} | " + " | ".join(f"{per_video[v]:.3f}" for v in videos) + " |")
    print(f"wrote {args.out}")
    return 0


def _cmd_compare(args) -> int:
    for group in args.groups:
        label, sep, dirs = group.partition("=")
        for folder in (dirs.split(",") if sep else [label]):
            if not Path(folder).is_dir():
                raise VadlabError(f"{folder}: no such run folder")
    if args.out:
        _out_folder(args.out)
    from vadlab.reports import compare_runs

    compare_runs(args.groups, args.out, metric=args.metric)
    if args.out:
        print(f"wrote {Path(args.out) / 'comparison.png'}, comparison.md and metrics.json")
    return 0


def _cmd_reproduce(args) -> int:
    from vadlab import reproduce

    if args.list:
        for name, title in reproduce.list_specs().items():
            print(f"{name:24s} {title}")
        return 0
    if not args.table:
        raise VadlabError("reproduce: name a TABLE (`vadlab reproduce --list` shows them)")
    seeds = None
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise VadlabError(f"--seeds {args.seeds!r}: expected integers, comma-separated (e.g. 0,1,2)") from None
    devices = reproduce.parse_devices(args.devices) if args.devices else None
    cluster = None
    if args.executor:
        from vadlab.reproduce.cluster import ClusterOptions

        cluster = ClusterOptions(args.executor, partition=args.partition, gpus=args.gpus, time_min=args.time,
                                 mem_gb=args.mem, cpus=args.cpus, max_jobs=args.max_jobs)
        if devices:
            raise ConfigError("reproduce: --devices and --executor: give one (--devices shares this machine's "
                              "devices, --executor submits each run as a job)")
    _out_folder(args.out)
    if args.dry_run:
        spec = reproduce.load_spec(args.table, args.preset)
        jobs = reproduce.plan(spec, preset=args.preset, data=args.data, runs=args.runs, seeds=seeds)
        print(reproduce.describe_plan(spec, jobs, args.preset, devices))
        if cluster is not None:
            from vadlab.reproduce.cluster import groups

            todo = [j for j in jobs if j.status not in ("finished", "with source")]
            print(f"  --executor {cluster.executor}: {len(groups(todo))} job(s), one per run folder (a run, then the "
                  f"rows re-scored from it), each {cluster.gpus} GPU(s), {cluster.time_min} min"
                  + (f", partition {cluster.partition}" if cluster.partition else ""))
        return 0
    try:
        reproduce.reproduce(args.table, preset=args.preset, data=args.data, runs=args.runs, out=args.out, seeds=seeds,
                            devices=devices, progress=not args.quiet, cluster=cluster)
    except Interrupted as exc:  # the finished runs are kept; the stopped one resumes from its checkpoint
        print(f"vadlab: {exc}\nresume with the same command: vadlab {shlex.join(sys.argv[1:])}", file=sys.stderr)
        return exc.exit_status
    return 0


# the synthetic generator's presets (vadlab.data.synthetic.config.PRESETS, which imports OpenCV: named here so that
# `--help` answers at once; tests/test_cli.py checks they match)
SYNTH_PRESETS = ("default", "tiny")
DEVICE_HELP = "auto (default: CUDA when there is one, else CPU) | cpu | cuda | cuda:N"


def _add_list(sub) -> None:
    """`vadlab list`."""
    sub.add_parser("list", help="registered methods and their presets").set_defaults(func=_cmd_list)


def _add_data_synth(data) -> None:
    """`vadlab data synth`."""
    p = data.add_parser("synth", help="write the synthetic walkway dataset")
    p.add_argument("root", help="the folder the dataset is written to (common layout)")
    p.add_argument("--preset", default="default", choices=SYNTH_PRESETS,
                   help="default (the demo's data: 160x120, 8 training videos of 120-150 frames) | tiny (80x60, 2 "
                        "videos of 24 frames, for tests); default: default")
    p.add_argument("--seed", type=int, default=0, help="the generator's seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already at ROOT")
    p.set_defaults(func=_cmd_synth)


def _add_data_import(data) -> None:
    """`vadlab data import`."""
    p = data.add_parser("import", help="convert an official download to the common layout")
    p.add_argument("kind", help="ucsd | avenue | shanghaitech | preprocessed | auto")
    p.add_argument("src", help="the unpacked official download (or a preprocessed frames folder)")
    p.add_argument("dst", help="the folder the common layout is written to")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already at DST")
    p.set_defaults(func=_cmd_import)


def _add_data_download(data) -> None:
    """`vadlab data download`."""
    p = data.add_parser("download", help="fetch an official dataset (ped1, ped2, avenue, shanghaitech), verify its "
                                         "SHA-256, unpack it safely and import it into ROOT")
    p.add_argument("name", help="ped1 | ped2 | avenue | shanghaitech")
    p.add_argument("root", help="the folder the dataset goes into (common layout; archives in ROOT/.download)")
    p.add_argument("--url", action="append", help="a mirror's address of the archive (one per archive, in order)")
    p.add_argument("--archive", action="append", help="an archive already downloaded: verify, unpack, import")
    p.add_argument("--sha256", action="append", help="the archive's SHA-256, replacing the table's (one per archive)")
    p.add_argument("--no-verify", action="store_true", help="skip the checksum (the computed one is printed)")
    p.add_argument("--retries", type=int, default=3, help="resumes after a dropped connection (default 3)")
    p.add_argument("--delete-archive", action="store_true", help="remove the downloaded archives after the import")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_download)


def _add_data_split(data) -> None:
    """`vadlab data split`."""
    split = data.add_parser("split", help="derive a few-anomaly dataset (DREAM Sec. IV-C, IV-E) in the common layout")
    split = split.add_subparsers(dest="protocol", required=True)
    p = split.add_parser("kfold", help="fold I of K of the abnormal test data joins training (abnormal/)")
    p.add_argument("root", help="the source dataset (common layout)")
    p.add_argument("out", help="the folder the derived dataset is written to")
    p.add_argument("--k", type=int, required=True, help="the number of folds")
    p.add_argument("--fold", type=int, required=True, help="the fold that joins training, 0-based")
    p.add_argument("--unit", default="segment", help="segment (anomalous runs, with a margin) | video (the paper's)")
    p.add_argument("--margin", type=int, default=5,
                   help="frames removed from test on each side of a moved segment (default 5)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already at OUT")
    p.set_defaults(func=_cmd_split)
    p = split.add_parser("rate", help="half the anomalous test segments held for test, training gets rate R")
    p.add_argument("root", help="the source dataset (common layout)")
    p.add_argument("out", help="the folder the derived dataset is written to")
    p.add_argument("--rate", type=float, required=True, help="abnormal / (normal + abnormal) training frames")
    p.add_argument("--seed", type=int, default=0, help="the seed of the segments' draw (default 0)")
    p.add_argument("--margin", type=int, default=5,
                   help="frames removed from test on each side of a moved segment (default 5)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already at OUT")
    p.set_defaults(func=_cmd_split)
    p = split.add_parser("pool", help="keep only abnormal/ videos of some anomaly types (synthetic data)")
    p.add_argument("root", help="the source dataset (common layout, with abnormal/)")
    p.add_argument("out", help="the folder the derived dataset is written to")
    p.add_argument("--types", required=True, help="comma-separated anomaly types")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already at OUT")
    p.set_defaults(func=_cmd_split)


def _add_data_check(data) -> None:
    """`vadlab data check`."""
    p = data.add_parser("check", help="validate a dataset root; exit 2 on any problem")
    p.add_argument("root", help="the dataset's folder (common layout)")
    p.set_defaults(func=_cmd_check)


def _add_data_flow(data) -> None:
    """`vadlab data flow`."""
    p = data.add_parser("flow", help="compute and cache the optical flow of a dataset (MAAM-Net's motion target)")
    p.add_argument("root", help="the dataset's folder (common layout); the flow is cached beside its frames")
    p.add_argument("--method", default="dis", choices=["dis", "farneback", "files"],
                   help="OpenCV's DIS (default) or Farneback flow, or precomputed .flo files (--flow-root)")
    p.add_argument("--size", help="also cache it resized to the model's HxW (vectors scaled), e.g. 64x96")
    p.add_argument("--splits", default="training,testing", help="comma-separated splits (default training,testing)")
    p.add_argument("--flow-root", help="with --method files: FLOW_ROOT/<split>/<video>/*.flo")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_flow)


def _add_data(sub) -> None:
    """`vadlab data ...`: each data command adds its own parser."""
    data = sub.add_parser("data", help="datasets: synthesise, import, download, check, optical flow")
    data = data.add_subparsers(dest="data_cmd", required=True)
    _add_data_synth(data)
    _add_data_import(data)
    _add_data_download(data)
    _add_data_split(data)
    _add_data_check(data)
    _add_data_flow(data)


def _add_train(sub) -> None:
    """`vadlab train`."""
    p = sub.add_parser("train", help="train a method")
    p.add_argument("method", help="a registered method (`vadlab list` shows them)")
    p.add_argument("--data", required=True, help="the dataset's folder (common layout)")
    p.add_argument("--out", required=True, help="the run folder: checkpoints, history.json, run.json")
    p.add_argument("--preset", default="cpu", help="smoke (seconds, checks the path) | cpu (default, minutes) | paper "
                                                   "(the paper's settings; some methods have more: `vadlab list`)")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    p.add_argument("--ablation", action="append", metavar="NAME",
                   help="a named ablation the method declares (`vadlab list` shows them; repeatable)")
    p.add_argument("--no-memory", action="store_true", help="shorthand for --ablation no_memory")
    p.add_argument("--seed", type=int, default=0, help="the training seed (default 0)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--evaluate", action="store_true", help="evaluate on the test split after training")
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores this process may use; "
                                               "$VADLAB_THREADS or $OMP_NUM_THREADS also set it)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)


def _add_evaluate(sub) -> None:
    """`vadlab evaluate`."""
    p = sub.add_parser("evaluate", help="score the test split with a trained run; writes metrics.json")
    p.add_argument("run", help="a trained run folder")
    p.add_argument("--data", help="the dataset to score (default: the one run.json names)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="test-time override (gamma, test_update, score_lambda); writes metrics[KEY=VALUE].json")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores this process may use; "
                                               "$VADLAB_THREADS or $OMP_NUM_THREADS also set it)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_evaluate)


def _add_score(sub) -> None:
    """`vadlab score`."""
    p = sub.add_parser("score", help="score a video file or a folder of frames with a trained run: per-frame CSV, "
                                     "score curve, overlay MP4, scores calibrated on the run's training frames")
    p.add_argument("run", help="a trained run folder")
    p.add_argument("video", help="a video file OpenCV reads (mp4, avi, ...) or a folder of frames")
    p.add_argument("--out", help="output folder (default: RUN/score/<video name>)")
    p.add_argument("--threshold", type=float, default=0.99,
                   help="flag frames above this quantile of the training frames' calibrated scores (default 0.99)")
    p.add_argument("--stream", action="store_true",
                   help="score frame by frame as frames are read, with bounded memory (a long file); Ctrl-C "
                        "stops after the current frame and keeps what was scored")
    p.add_argument("--no-video", action="store_true", help="skip the overlay MP4")
    p.add_argument("--data", help="the run's training data, to calibrate a run made before calibration was stored "
                                  "(default: the data run.json names)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores this process may use; "
                                               "$VADLAB_THREADS or $OMP_NUM_THREADS also set it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_score)


def _add_baseline(sub) -> None:
    """`vadlab baseline`."""
    p = sub.add_parser("baseline", help="frame-difference baseline metrics of a dataset")
    p.add_argument("--data", required=True, help="the dataset's folder (common layout)")
    p.add_argument("--out", required=True, help="the folder metrics.json is written to")
    p.add_argument("--size", type=int, default=64, help="frames are resized to SIZE pixels high first (default 64)")
    p.set_defaults(func=_cmd_baseline)


def _add_report(sub) -> None:
    """`vadlab report`."""
    p = sub.add_parser("report", help="run notebooks headlessly into OUT/<name>/ (executed notebook, HTML, every "
                                      "figure as PNG 300 dpi and PDF, metrics.json, provenance.json) and write "
                                      "OUT/index.html; exit 1 when a notebook fails (the others still run)")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="notebooks to run (e.g. notebooks/*.ipynb)")
    p.add_argument("--out", default="reports", help="the reports folder (default: reports)")
    p.add_argument("--name", help="the report's folder name (one notebook; default: the notebook's name)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="notebook parameter (JSON value, else a string); each notebook gets those it declares")
    p.add_argument("--jobs", type=int, default=1, help="notebooks run side by side after the first, the cores "
                                                       "shared among them (default 1: one after the other)")
    p.set_defaults(func=_cmd_report)


def _add_compare(sub) -> None:
    """`vadlab compare`."""
    p = sub.add_parser("compare", help="side-by-side metrics of evaluated runs: GROUP is a folder of runs or "
                                       "LABEL=DIR1,DIR2 (seeds averaged)")
    p.add_argument("groups", nargs="+", metavar="GROUP",
                   help="a folder of evaluated runs, or LABEL=DIR1,DIR2 (runs of the same name averaged)")
    p.add_argument("--out", help="the folder comparison.png, comparison.md and metrics.json are written to "
                                 "(default: print the table only)")
    p.add_argument("--metric", default="micro_auc",
                   help="a key of the runs' metrics.json: micro_auc (default), macro_auc, eer, ...")
    p.set_defaults(func=_cmd_compare)


def _add_curves(sub) -> None:
    """`vadlab curves`."""
    p = sub.add_parser("curves", help="per-video score curves of evaluated runs (LABEL=RUN) beside the "
                                      "frame-difference "
                                      "baseline, with each run's AUC in each video")
    p.add_argument("runs", nargs="+", metavar="RUN", help="an evaluated run folder, or LABEL=RUN")
    p.add_argument("--out", required=True, help="the PNG file the figure is written to")
    p.add_argument("--data", help="dataset root (default: the first run's)")
    p.set_defaults(func=_cmd_curves)


def _add_reproduce(sub) -> None:
    """`vadlab reproduce`."""
    p = sub.add_parser("reproduce", help="re-run a paper's table from its spec (vadlab/specs): every row and seed, "
                                         "resumable; writes OUT/<table>/table.md, table.csv, table.png, "
                                         "provenance.json")
    p.add_argument("table", nargs="?", help="a spec name (--list shows them) or a .toml file")
    p.add_argument("--preset", default="cpu", help="smoke | cpu (default) | paper")
    p.add_argument("--data", help="the dataset root (default: data/ped2-mini for ped2, data/synthetic-<preset> for "
                                  "synthetic:<preset>)")
    p.add_argument("--runs", default="runs/reproduce", help="where the runs go: RUNS/<table>/<row>/seed<k>")
    p.add_argument("--out", default="reports", help="the reports folder")
    p.add_argument("--seeds", help="comma-separated seeds (default: the spec's)")
    p.add_argument("--devices", help="one worker per device: CUDA indices (0,1) or cpu (cpu,cpu: the cores shared)")
    c = p.add_argument_group("cluster (submitit; pip install 'vadlab[cluster]')")
    c.add_argument("--executor", choices=["slurm", "local"],
                   help="one job per run, through submitit: slurm, or local (submitit's local executor: subprocesses "
                        "of this machine); a preempted or timed-out job is requeued and resumes from its checkpoint")
    c.add_argument("--partition", help="Slurm partition")
    c.add_argument("--gpus", type=int, default=0, help="GPUs per job (default 0)")
    c.add_argument("--time", type=int, default=240, help="time limit per job, minutes (default 240)")
    c.add_argument("--mem", type=int, help="memory per job, GB (default: the partition's)")
    c.add_argument("--cpus", type=int, help="CPU cores per job (default: the partition's)")
    c.add_argument("--max-jobs", type=int, help="jobs submitted at once (default: all on slurm, 1 on local)")
    p.add_argument("--dry-run", action="store_true", help="list the runs (new / to resume / finished / to re-score) "
                                                          "and a time estimate; run nothing")
    p.add_argument("--list", action="store_true", help="name every spec with its title")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_reproduce)


def _add_demo(sub) -> None:
    """`vadlab demo`."""
    p = sub.add_parser("demo", help="the demo: synthesise, train every registered method, compare them, reports "
                                    "and OUT/index.html")
    p.add_argument("--method", action="append", help="only these methods (repeatable; default: every registered one)")
    p.add_argument("--data", default="data/synthetic-default",
                   help="the dataset (synthesised there when missing; default data/synthetic-default)")
    p.add_argument("--out", default="reports", help="the reports folder")
    p.add_argument("--runs", default="runs/demo", help="where the runs go (one folder per method)")
    p.add_argument("--preset", default="cpu", help="smoke (seconds, for a check), cpu (minutes per method)")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--no-inspect", action="store_true", help="skip the per-method inspection reports")
    p.add_argument("--jobs", type=int, help="inspection reports side by side, the cores shared among them "
                                            "(default: one per core, at most 4)")
    p.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """The `vadlab` parser: each command adds its own (`_add_<command>`)."""
    parser = argparse.ArgumentParser(prog="vadlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_list(sub)
    _add_data(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_score(sub)
    _add_baseline(sub)
    _add_report(sub)
    _add_compare(sub)
    _add_curves(sub)
    _add_reproduce(sub)
    _add_demo(sub)
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
