"""Training steps and scoring against the machine's own limit (issue 27): for every registered method at a preset, the
FLOPs of one training step (forward, backward, the optimiser step and `after_optimizer_step`, counted by
`torch.utils.flop_counter.FlopCounterMode`) and of one scored frame, the seconds per step (median of `--reps` after
`--warmup`, on one batch the method's own loader drew, shaped as the preset's), the seconds the loader takes to draw
a batch, the achieved FLOP/s, and the machine's measured matmul and convolution FLOP/s at the same thread count,
with the ratios. Not a test: it asserts nothing.

    python benchmarks/bench_roofline.py --data data/ped2-mini --fold data/ped2-mini-k3f0 --preset cpu \
        --out benchmarks/results/roofline-cpu

`--fold`: a dataset with an `abnormal/` pool for the methods that train on labelled anomalies (DREAM). Run it on a
quiet machine (e.g. under the shared CPU lock): other processes on the same cores inflate every time.

The step is the engine's (`engine._train`): `training_step`, `zero_grad`, `backward`, gradient clipping when set,
`optimizer.step`, `after_optimizer_step`, on one batch already in memory; the loader's time is measured apart. A
method whose training changes between stages is measured in each (STD: `pretrain` at epoch 0 and `alternate` at
`pretrain_epochs`, after its K-means initialisation). The scored-frame FLOPs come from `score_batch` on a batch of
test clips (`engine.scoring_batch_size`), divided by its clips; the scoring seconds per frame are the model's alone
(no reading, no writing; `vadlab score` adds those).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from vadlab import distributed, engine
from vadlab import threads as cpu_threads
from vadlab.data.layout import load_layout
from vadlab.models.base import EpochContext
from vadlab.registry import create_method, list_methods


def _median_seconds(fn, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def machine_peaks(n: int = 1024, conv_shape: tuple[int, int, int, int] = (8, 64, 64, 64), warmup: int = 3,
                  reps: int = 10) -> dict:
    """The measured FLOP/s of an n x n float32 matmul and of a 3x3 convolution (64 -> 64 channels on `conv_shape`,
    forward) at torch's current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    x = torch.randn(*conv_shape)
    conv = torch.nn.Conv2d(conv_shape[1], conv_shape[1], 3, padding=1, bias=False)
    out = {"threads": torch.get_num_threads(), "matmul_n": n, "conv_input": list(conv_shape)}
    with torch.inference_mode():
        mm_flops = _flops(lambda: a @ b)
        out["matmul_flops_per_s"] = mm_flops / _median_seconds(lambda: a @ b, warmup, reps)
        conv_flops = _flops(lambda: conv(x))
        out["conv_flops_per_s"] = conv_flops / _median_seconds(lambda: conv(x), warmup, reps)
    return out


def stages(method) -> list[tuple[str, int]]:
    """(label, epoch) of each training stage worth measuring: STD's two, one for the others."""
    cfg = method.config
    if method.name == "std":
        both = [("pretrain", 0), ("alternate", cfg.pretrain_epochs)]
        return [(label, epoch) for label, epoch in both if epoch < cfg.epochs and (label != "pretrain" or
                                                                                 cfg.pretrain_epochs > 0)]
    return [("", 0)]


class StepBench:
    """A method ready to run the engine's training step on one batch of its own loader."""

    def __init__(self, name: str, preset: str, layout, *, seed: int = 0, device: str = "cpu"):
        self.name = name
        self.method = create_method(name, preset)
        engine.set_seed(seed)
        self.dev = engine.resolve_device(device)
        self.model = self.method.model.to(self.dev)
        self.optimizer, _ = self.method.configure_optimizers()
        self.method.train_net = self.model
        self.layout = layout
        self.dataset = self.method.train_dataset(layout)
        self.seed = seed
        self.batch = None

    def start(self, epoch: int) -> None:
        """The stage of `epoch` (`on_epoch_start`) and a batch of that epoch's loader."""
        cfg = self.method.config
        context = EpochContext(dataset=self.dataset, optimizer=self.optimizer, device=self.dev, seed=self.seed)
        self.method.on_epoch_start(epoch, context)
        self.model.train()
        group = distributed.Group(0, 1, self.dev, False)
        drop_last = len(self.dataset) > cfg.batch_size
        self.loader = engine._train_loader(self.method, self.dataset, epoch, self.seed, group, drop_last, self.dev)
        self.batch = engine._to_device(next(iter(self.loader)), self.dev)

    def forward_backward(self) -> dict:
        with engine._autocast(self.dev):
            outputs = self.method.training_step(self.batch)
        self.optimizer.zero_grad(set_to_none=True)
        outputs["loss"].backward()
        return outputs

    def step(self) -> None:
        """The engine's step (`engine._train`'s loop body, without its checks and running sums)."""
        outputs = self.forward_backward()
        cfg = self.method.config
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.method.after_optimizer_step(outputs)
        if self.dev.type == "cuda":
            torch.cuda.synchronize()

    def loader_seconds(self, batches: int = 5) -> float:
        """Median seconds the loader takes to draw one batch (the data path of a step)."""
        times, it = [], iter(self.loader)
        for _ in range(batches):
            t0 = time.perf_counter()
            try:
                next(it)
            except StopIteration:
                break
            times.append(time.perf_counter() - t0)
        return statistics.median(times) if times else float("nan")

    def scoring(self, warmup: int, reps: int) -> tuple[int, float, int]:
        """(FLOPs per scored frame, model seconds per scored frame, clips per scoring batch) on the test videos."""
        method = self.method
        method.model.eval()
        videos = self.layout.testing
        fit = method.fit_scoring(engine.calibration_videos(self.layout.training, max_frames=64), progress=False)
        if fit:
            method.use_scoring_fit(fit)
        method.begin_scoring([v.name for v in videos])
        method.reset_test_state()
        size = engine.scoring_batch_size(method)
        dataset = method.test_dataset(videos[:1])
        loader = torch.utils.data.DataLoader(dataset, batch_size=size, shuffle=False)
        batch = engine._to_device(next(iter(loader)), self.dev)
        clips = len(batch["index"])
        with torch.no_grad():
            flops = _flops(lambda: engine.score_clips(method, batch, self.dev))
            seconds = _median_seconds(lambda: engine.score_clips(method, batch, self.dev), warmup, reps)
        return flops // clips, seconds / clips, clips


def profile(fn, steps: int = 3, top: int = 8) -> list[dict]:
    """The ops that take the most self CPU time over `steps` calls (torch.profiler): name, share of the time, ms per
    call, and whether FlopCounterMode counts FLOPs for it (matmul/conv: compute; the rest: memory traffic and
    dispatch)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    counted = ("conv", "mm", "addmm", "bmm", "matmul", "linear", "baddbmm")
    return [{"op": e.key, "share": e.self_cpu_time_total / total, "ms_per_step": e.self_cpu_time_total / 1e3 / steps,
             "calls_per_step": e.count / steps, "flops_counted": any(k in e.key for k in counted)}
            for e in events[:top]]


def measure(name: str, preset: str, layout, *, warmup: int = 3, reps: int = 10, device: str = "cpu",
            top_ops: int = 0, channels_last: bool = False, compile: bool = False) -> list[dict]:
    """One row per training stage of a method: FLOPs and seconds per step, the loader's seconds per batch, and the
    FLOPs and model seconds per scored frame (`top_ops`: and the ops that take the most time in a step;
    `channels_last`: the model's weights in channels-last layout, as the engine puts them on CUDA; `compile`: the
    step's network through `torch.compile` (inductor), its FLOPs counted eager, its first calls (the compilation)
    left out of the timing)."""
    bench = StepBench(name, preset, layout, device=device)
    if channels_last:
        bench.model.to(memory_format=torch.channels_last)
    rows = []
    for label, epoch in stages(bench.method):
        bench.start(epoch)
        flops = _flops(bench.step)  # the whole step: STD's alternate stage runs a forward after the update
        if compile:
            bench.method.train_net = torch.compile(bench.model)
        seconds = _median_seconds(bench.step, warmup + 2 * compile, reps)
        bench.method.train_net = bench.model
        rows.append({"method": name + (f" ({label})" if label else ""), "preset": preset, "epoch": epoch,
                     "batch": list(bench.batch["input"].shape), "step_flops": flops, "step_seconds": seconds,
                     "achieved_flops_per_s": flops / seconds, "loader_seconds": bench.loader_seconds(),
                     "channels_last": channels_last, "compiled": compile})
        if top_ops:
            rows[-1]["top_ops"] = profile(bench.step, top=top_ops)
    frame_flops, frame_seconds, clips = bench.scoring(warmup=1, reps=max(3, reps // 2))
    for row in rows:
        row.update({"score_flops_per_frame": frame_flops, "score_model_seconds_per_frame": frame_seconds,
                    "score_batch": clips})
    return rows


def table(rows: list[dict], peaks: dict) -> str:
    """The markdown table; each row's ratios are to the peaks measured just before it (`row["machine"]`) when it
    has them (a shared machine's load changes within a run), else to `peaks`."""
    mm, conv = peaks["matmul_flops_per_s"], peaks["conv_flops_per_s"]
    lines = [f"machine: {peaks['threads']} threads, matmul {peaks['matmul_n']}^2 {mm / 1e9:.1f} GFLOP/s, conv 3x3 "
             f"{peaks['conv_input']} {conv / 1e9:.1f} GFLOP/s (median over the methods' measurements)", "",
             "| method | batch | GFLOP/step | s/step | GFLOP/s | matmul, conv GFLOP/s | / matmul | / conv "
             "| loader s/batch | MFLOP/scored frame | model frames/s (scoring) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        achieved = r["achieved_flops_per_s"]
        here = r.get("machine", peaks)
        rm, rc = here["matmul_flops_per_s"], here["conv_flops_per_s"]
        lines.append(f"| {r['method']} | {'x'.join(map(str, r['batch']))} | {r['step_flops'] / 1e9:.2f} | "
                     f"{r['step_seconds']:.3f} | {achieved / 1e9:.1f} | {rm / 1e9:.0f}, {rc / 1e9:.0f} | "
                     f"{achieved / rm:.2f} | {achieved / rc:.2f} | "
                     f"{r['loader_seconds']:.3f} | {r['score_flops_per_frame'] / 1e6:.0f} | "
                     f"{1 / r['score_model_seconds_per_frame']:.0f} |")
    return "\n".join(lines)


def ops_table(rows: list[dict]) -> str:
    """The profiled ops of each row (`--top-ops`), or nothing."""
    lines = []
    for r in (r for r in rows if r.get("top_ops")):
        ops = ", ".join(f"{o['op']} {100 * o['share']:.0f} %{'' if o['flops_counted'] else ' (no FLOPs)'}"
                        for o in r["top_ops"])
        lines.append(f"- {r['method']}: {ops}")
    return "\n\nSlowest ops of a step (share of the step's self CPU time):\n" + "\n".join(lines) if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset root (default: synthetic `tiny`, generated in a temp folder)")
    parser.add_argument("--fold", help="dataset with an abnormal/ pool for DREAM (default: --data)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--methods", help="comma-separated (default: every registered method)")
    parser.add_argument("--threads", type=int, help="torch threads (default: vadlab's, from the environment)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="write OUT.json and OUT.md")
    parser.add_argument("--top-ops", type=int, default=0, help="also profile each step: its N slowest ops")
    parser.add_argument("--channels-last", action="store_true", help="the model's weights in channels-last layout")
    parser.add_argument("--compile", action="store_true", help="the step's network through torch.compile")
    args = parser.parse_args()
    cpu_threads.configure(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.data is None:
            from vadlab.data.synthetic import synthesize

            synthesize(Path(tmp) / "tiny", "tiny", seed=0, progress=False)
        data = load_layout(args.data or Path(tmp) / "tiny")
        fold = load_layout(args.fold) if args.fold else data
        rows, measured = [], []
        for name in (args.methods.split(",") if args.methods else list_methods()):
            layout = fold if name.startswith("dream") else data
            measured.append(machine_peaks(warmup=args.warmup, reps=args.reps))  # just before: the same load
            for row in measure(name, args.preset, layout, warmup=args.warmup, reps=args.reps, device=args.device,
                               top_ops=args.top_ops, channels_last=args.channels_last,
                               compile=args.compile):
                rows.append({**row, "machine": measured[-1]})
                print(json.dumps(rows[-1]), flush=True)
        peaks = {**measured[0], **{k: statistics.median(m[k] for m in measured)
                                   for k in ("matmul_flops_per_s", "conv_flops_per_s")}}
    text = table(rows, peaks) + ops_table(rows)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "data": str(data.root),
                "fold": str(fold.root), "warmup": args.warmup, "reps": args.reps, "device": args.device}
        out.with_suffix(".json").write_text(json.dumps({"meta": meta, "machine": peaks, "rows": rows}, indent=1))
        out.with_suffix(".md").write_text(f"{text}\n\n{json.dumps(meta)}\n")


if __name__ == "__main__":
    main()
