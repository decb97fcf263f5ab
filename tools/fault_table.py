"""Issue 25's fault table, as a user meets it: each case run as a real `vadlab` subprocess, its exit status and message.

    python tools/fault_table.py [--out fault_table.md] [--keep]

Everything happens in a temporary folder (its own VADLAB_CACHE and VADLAB_DATA): a `tiny` synthetic dataset made by
`vadlab data synth`, and `smoke` runs made by `vadlab train`. Each case is a small function that sets up one fault
the way tests/test_fault_table.py does, runs one `vadlab` command from that folder (so the command shown is the one
run, paths relative to it) and says what, if anything, was left on disk where that matters. Nothing is expected here:
the table reports what happened. `wall s` is each command's wall-clock time (startup included), on whatever else the
machine is doing. Run by hand; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
MESSAGE_CHARS = 160


@dataclass
class Outcome:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    on_disk: str = ""  # what was (or was not) left behind, where that matters
    then: str = ""  # what was done to the process after it started (shown after the command)


class Lab:
    """The temporary folder, the environment of every `vadlab` process, and the data and runs the cases share."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}  # the download row's loopback
        self.env.update(VADLAB_CACHE=str(root / "cache"), VADLAB_DATA=str(root / "datasets"), OMP_NUM_THREADS="1",
                        MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                                                  os.environ.get("PYTHONPATH")])))

    def popen(self, args: list[str]) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "vadlab.cli", *args], cwd=self.root, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def vadlab(self, *args: str, timeout: float = 300) -> Outcome:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "vadlab.cli", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        return Outcome(["vadlab", *args], proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0)

    def setup(self, *args: str) -> None:
        """A `vadlab` command a case needs done first; it must succeed."""
        out = self.vadlab(*args)
        if out.returncode != 0:
            raise SystemExit(f"setup failed: {shlex.join(out.command)} (exit {out.returncode})\n{out.stderr}")

    def prepare(self) -> None:
        self.setup("data", "synth", "tiny", "--preset", "tiny")
        self.setup("data", "synth", "tiny-other", "--preset", "tiny", "--seed", "5")
        self.setup("train", "mnad_pred", "--data", "tiny", "--out", "runs/mnad_pred", "--preset", "smoke", "--quiet")
        self.setup("train", "mnad_recon", "--data", "tiny", "--out", "runs/mnad_recon", "--preset", "smoke",
                   "--quiet")
        write_video(self.root / "clip.avi")

    def copy(self, source: str, name: str) -> str:
        """A copy of a folder under the lab (cases change copies, never the shared runs and data)."""
        shutil.copytree(self.root / source, self.root / name)
        return name


def write_video(path: Path, frames: int = 27) -> Path:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


# --- the cases ----------------------------------------------------------------------------------------------------
class Payload:
    """Unpickling this creates a file: the proof that code in the checkpoint ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _crafted(lab: Lab, name: str) -> tuple[str, Path]:
    import torch

    run = lab.copy("runs/mnad_pred", name)
    marker = lab.root / f"{name}.PAYLOAD_RAN"
    good = torch.load(lab.root / run / "checkpoint.pt", weights_only=True)
    torch.save({**good, "config": Payload(marker)}, lab.root / run / "checkpoint.pt")  # looks like a vadlab one
    return run, marker


def crafted_evaluate(lab: Lab) -> Outcome:
    run, marker = _crafted(lab, "crafted-evaluate")
    out = lab.vadlab("evaluate", run, "--quiet")
    written = (lab.root / run / "metrics.json").exists()
    out.on_disk = f"payload ran: {yes_no(marker.exists())}; metrics.json written: {yes_no(written)}"
    return out


def crafted_score(lab: Lab) -> Outcome:
    run, marker = _crafted(lab, "crafted-score")
    out = lab.vadlab("score", run, "clip.avi", "--quiet", "--no-video")
    written = (lab.root / run / "score").exists()
    out.on_disk = f"payload ran: {yes_no(marker.exists())}; score/ written: {yes_no(written)}"
    return out


def crafted_plain_pickle(lab: Lab) -> Outcome:
    run = lab.copy("runs/mnad_pred", "crafted-pickle")
    marker = lab.root / "crafted-pickle.PAYLOAD_RAN"
    with open(lab.root / run / "checkpoint.pt", "wb") as f:  # no torch zip container at all
        pickle.dump({"method": "mnad_pred", "x": Payload(marker)}, f)
    out = lab.vadlab("evaluate", run, "--quiet")
    out.on_disk = f"payload ran: {yes_no(marker.exists())}"
    return out


def _set(setting: str) -> Callable[[Lab], Outcome]:
    def case(lab: Lab) -> Outcome:
        out_dir = f"out-set-{setting.replace('=', '-')}"
        cache = size(lab.root / "cache")
        out = lab.vadlab("train", "mnad_pred", "--data", "tiny", "--out", out_dir, "--preset", "smoke", "--set",
                         setting, "--quiet")
        grown = size(lab.root / "cache") - cache
        out.on_disk = f"--out left: {yes_no((lab.root / out_dir).exists())}; cache grew: {grown} bytes"
        return out

    return case


def _resume(other: list[str], name: str) -> Callable[[Lab], Outcome]:
    def case(lab: Lab) -> Outcome:
        run = lab.copy("runs/mnad_pred", name)
        before = snapshot(lab.root / run)
        out = lab.vadlab("train", "mnad_pred", "--out", run, "--preset", "smoke", "--epochs", "2", "--resume",
                         "--quiet", *other)
        out.on_disk = f"run rewritten: {yes_no(snapshot(lab.root / run) != before)}"
        return out

    return case


def mixed_folder(lab: Lab) -> Outcome:
    run = lab.copy("runs/mnad_recon", "mixed")
    shutil.copy(lab.root / "runs/mnad_pred/checkpoint.pt", lab.root / run / "checkpoint.pt")  # MNAD-P weights
    out = lab.vadlab("evaluate", run, "--quiet")
    out.on_disk = f"metrics.json written: {yes_no((lab.root / run / 'metrics.json').exists())}"
    return out


def short_video(lab: Lab) -> Outcome:
    whole = (lab.root / "clip.avi").read_bytes()
    (lab.root / "cut.avi").write_bytes(whole[: int(len(whole) * 0.6)])  # the header still announces 27 frames
    out = lab.vadlab("score", "runs/mnad_pred", "cut.avi", "--out", "scored-cut", "--quiet", "--no-video")
    summary = lab.root / "scored-cut" / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        out.on_disk = f"summary.json: frames {s.get('frames')} of {s.get('frames_in_header')}, short " + (
            "set" if s.get("short") else "not set")
    else:
        out.on_disk = "no summary.json"
    return out


def compare_unevaluated(lab: Lab) -> Outcome:
    lab.copy("runs/mnad_pred", "group/mnad_pred")
    out = lab.vadlab("compare", "group", "--out", "comparison")
    out.on_disk = f"--out left: {yes_no((lab.root / 'comparison').exists())}"
    return out


def report_not_a_notebook(lab: Lab) -> Outcome:
    (lab.root / "fake.ipynb").write_text('{"not": "a notebook"}')
    out = lab.vadlab("report", "fake.ipynb", "--out", "reports")
    out.on_disk = f"--out left: {yes_no((lab.root / 'reports').exists())}"
    return out


def evaluate_truncated_test_frame(lab: Lab) -> Outcome:
    root = lab.copy("tiny", "tiny-cut-test")
    frame = sorted((lab.root / root / "testing" / "frames").glob("*/*"))[3]
    frame.write_bytes(frame.read_bytes()[:60])  # truncated mid-file
    out = lab.vadlab("train", "mnad_pred", "--data", root, "--out", "out-evaluate", "--preset", "smoke",
                     "--evaluate", "--quiet")
    out.on_disk = f"--out left: {yes_no((lab.root / 'out-evaluate').exists())}"
    return out


def _early(extra: list[str], name: str, data: str = "tiny") -> Callable[[Lab], Outcome]:
    def case(lab: Lab) -> Outcome:
        root = data
        if data == "broken":  # an undecodable training frame
            root = lab.copy("tiny", "tiny-broken-train")
            sorted((lab.root / root / "training" / "frames").glob("*/*"))[2].write_bytes(b"not an image")
        out = lab.vadlab("train", "mnad_pred", "--data", root, "--out", f"{name}/run", "--preset", "smoke",
                         "--quiet", *extra)
        out.on_disk = f"--out left: {yes_no((lab.root / name).exists())}"
        return out

    return case


def _stalling_server(body: bytes, sent: threading.Event) -> socket.socket:
    """HTTP on the loopback: the headers of a file of `len(body) * 10` bytes, then `body`, then it stalls."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(body) * 10) + body)
        sent.set()
        time.sleep(30)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener


def sigterm_download(lab: Lab) -> Outcome:
    body = bytes(range(256)) * 12  # 3072 bytes, sent at once, then nothing
    sent = threading.Event()
    listener = _stalling_server(body, sent)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/UCSD_Anomaly_Dataset.tar.gz"
    args = ["data", "download", "ped2", "ped2", "--url", url, "--no-verify", "--quiet"]
    t0 = time.perf_counter()
    proc = lab.popen(args)
    try:
        if not sent.wait(60):
            proc.kill()
            raise SystemExit("the download never started")
        time.sleep(1.0)  # the bytes reach the process
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        listener.close()
    out = Outcome(["vadlab", *args], proc.returncode, stdout, stderr, time.perf_counter() - t0,
                  then="SIGTERM once 3072 bytes are sent")
    part = lab.root / "ped2" / ".download" / "UCSD_Anomaly_Dataset.tar.gz.part"
    kept = part.stat().st_size if part.exists() else None
    out.on_disk = "no .part" if kept is None else f".part holds {kept} of the {len(body)} bytes sent"
    return out


def device_cuda(lab: Lab) -> Outcome:
    out = _early(["--device", "cuda"], "out-cuda")(lab)
    try:
        import torch

        if torch.cuda.is_available():
            out.on_disk += " (CUDA IS available here: not the fault)"
    except ImportError:
        pass
    return out


CASES: list[tuple[str, Callable[[Lab], Outcome]]] = [
    ("crafted checkpoint.pt (pickle payload): evaluate", crafted_evaluate),
    ("crafted checkpoint.pt (pickle payload): score", crafted_score),
    ("crafted checkpoint.pt, plain pickle (no torch container): evaluate", crafted_plain_pickle),
    ("--set lr=1e6", _set("lr=1e6")),
    ("--set lr=1e15", _set("lr=1e15")),
    ("--set lr=1e38", _set("lr=1e38")),
    ("--set image_size=4096", _set("image_size=4096")),
    ("--resume with another --seed", _resume(["--data", "tiny", "--seed", "7"], "resume-seed")),
    ("--resume with another --data", _resume(["--data", "tiny-other"], "resume-data")),
    ("a MNAD-P checkpoint in a MNAD-R run folder", mixed_folder),
    ("score of an AVI truncated mid-file (27 frames in its header)", short_video),
    ("compare on a run never evaluated", compare_unevaluated),
    ("report on a file that is not a notebook", report_not_a_notebook),
    ("train --evaluate with a truncated test frame", evaluate_truncated_test_frame),
    ("--threads 0", _early(["--threads", "0"], "out-threads")),
    ("--device cuda without CUDA", device_cuda),
    ("an undecodable training frame", _early([], "out-broken", data="broken")),
    ("SIGTERM during a download", sigterm_download),
]


# --- the table ----------------------------------------------------------------------------------------------------
def message(out: Outcome) -> str:
    """The line that matters: vadlab's first `vadlab: error: ...` line, else its first `vadlab: ...` line (a
    warning), else a traceback's last line, else the first line written (stderr before stdout)."""
    err = [line.strip() for line in out.stderr.splitlines() if line.strip()]
    std = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    line = next((x for x in err if x.startswith("vadlab: error:")), None)
    line = line or next((x for x in err if x.startswith("vadlab:")), None)
    if line is None and any(x.startswith("Traceback") for x in err):
        line = "(traceback) " + err[-1]
    if line is None:
        line = (err or std or ["(nothing)"])[0]
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 1] + "…"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: list[tuple[str, Outcome]]) -> str:
    lines = ["| case | command | exit | message | left behind / on disk | wall s |", "|---|---|---|---|---|---|"]
    for case, out in rows:
        command = f"`{cell(shlex.join(out.command))}`" + (f", then {out.then}" if out.then else "")
        lines.append(f"| {cell(case)} | {command} | {out.returncode} | {cell(message(out))} | "
                     f"{cell(out.on_disk) or '-'} | {out.seconds:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="vadlab-faults-"))
    try:
        lab = Lab(root)
        print(f"preparing data and smoke runs in {root} ...", file=sys.stderr)
        lab.prepare()
        rows = []
        for case, run in CASES:
            print(f"- {case}", file=sys.stderr)
            rows.append((case, run(lab)))
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    text = table(rows)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
