"""Papermill runs of the notebooks: `run_notebook`, `read_notebook_scraps`, and `build_report` / `report_notebooks`: the
executed notebook, its HTML, every figure at 300 dpi and as PDF, metrics, provenance."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from vadlab import viz
from vadlab.errors import VadlabError
from vadlab.io import atomic_path, write_json
from vadlab.reports.index import write_index
from vadlab.reports.provenance import data_provenance, git_state, package_versions

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _kernel_manager_class(env: dict | None = None):
    """jupyter_client's kernel manager over IPC (Unix sockets in the runtime folder) instead of TCP on localhost: the
    kernel is only ever ours, and over TCP ipykernel warns at every start that it runs without encryption (seven
    warnings in a demo). `env`: variables for this kernel only, on top of ours (reports run side by side each with
    their own figure folder and threads). Papermill passes the class on to nbclient."""
    import uuid

    from jupyter_client import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir

    extra = dict(env or {})

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            runtime = Path(jupyter_runtime_dir())
            runtime.mkdir(parents=True, exist_ok=True)  # the sockets' absolute path: the same for client and kernel
            kwargs.setdefault("ip", str(runtime / f"vadlab-{uuid.uuid4().hex[:12]}-ipc"))
            super().__init__(transport="ipc", **kwargs)

        async def _async_interrupt_kernel(self):
            if self.shutting_down:  # the run is over and the kernel idle: a shutdown request is enough (jupyter_client
                return  # sends SIGINT first, and a kernel still busy logs "KeyboardInterrupt caught in kernel")
            await super()._async_interrupt_kernel()

        async def _async_pre_start_kernel(self, **kw):
            kw["env"] = {**kw.get("env", os.environ), **extra}
            return await super()._async_pre_start_kernel(**kw)

        def cleanup_ipc_files(self) -> None:  # the ports may be reset by then: every socket of this kernel
            for socket in Path(self.ip).parent.glob(f"{Path(self.ip).name}-*"):
                socket.unlink(missing_ok=True)

    return IPCKernelManager


def _execute(notebook: Path, target: Path, params: dict, *, kernel: str, progress: bool, cwd,
             env: dict | None = None) -> None:
    """papermill over an IPC kernel, without progress bars in the kernel (`vadlab.progress`: a headless run); `env`
    goes to this kernel only."""
    import papermill as pm

    from vadlab.progress import HEADLESS_ENV

    pm.execute_notebook(str(notebook), str(target), parameters=params, kernel_name=kernel, progress_bar=progress,
                        cwd=str(cwd or Path.cwd()),
                        kernel_manager_class=_kernel_manager_class({HEADLESS_ENV: "1", **(env or {})}))


def run_notebook(notebook: str | os.PathLike, out_dir: str | os.PathLike, parameters: dict | None = None,
                 *, kernel: str = "python3", progress: bool = False, cwd: str | os.PathLike | None = None) -> Path:
    """Execute a notebook with papermill into `out_dir/<name>.ipynb` (written atomically); returns its path.

    The kernel runs in `cwd` (default: the caller's working directory), so relative paths in `parameters` mean
    what they mean to the caller."""
    notebook = Path(notebook)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / notebook.name
    with atomic_path(target) as tmp:
        _execute(notebook, Path(tmp), parameters or {}, kernel=kernel, progress=progress, cwd=cwd)
    return target


def read_notebook_scraps(path: str | os.PathLike) -> dict:
    """Values recorded with `scrapbook.glue` in an executed notebook."""
    import scrapbook as sb

    return {name: scrap.data for name, scrap in sb.read_notebook(str(path)).scraps.items()}


# --- reports: executed notebook, HTML, every figure at 300 dpi and as PDF, metrics, provenance, index -------------
def _defaults(notebook: Path) -> dict:
    """The parameters a notebook declares, with their default values."""
    import ast

    import papermill as pm

    out = {}
    for name, info in pm.inspect_notebook(str(notebook)).items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            out[name] = info["default"]
    return out


def _html(executed: Path, target: Path) -> None:
    import warnings

    from nbconvert import HTMLExporter

    exporter = HTMLExporter(embed_images=True)
    with warnings.catch_warnings():  # scrapbook's records have no HTML form, by design
        warnings.filterwarnings("ignore", message=".*application/scrapbook", category=UserWarning)
        body, _ = exporter.from_filename(str(executed))
    with atomic_path(target) as tmp:
        Path(tmp).write_text(body)


def _failure(exc) -> dict:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return {"cell": exc.exec_count, "error": f"{exc.ename}: {exc.evalue}"}
    return {"cell": None, "error": f"{type(exc).__name__}: {exc}"}


def build_report(notebook: str | os.PathLike, root: str | os.PathLike = "reports", parameters: dict | None = None, *,
                 name: str | None = None, cwd: str | os.PathLike | None = None, progress: bool = False,
                 env: dict | None = None) -> dict:
    """Run `notebook` with papermill into `root/<name>/` (default name: the notebook's) and write there: the executed
    notebook, `<name>.html` (images embedded), `figures/NN_*.png` (300 dpi) and `.pdf` of every figure the notebook
    saved through `vadlab.viz`, `metrics.json` (what it recorded with scrapbook), `provenance.json` (parameters,
    package versions, git commit and dirty flag, seed, device, data root and a checksum of its labels) and
    `report.json` (status; for a failure the cell that failed and its error).

    The report is built in a temp folder beside, then swapped in; a failing notebook still gets its folder (status
    "failed", the partial notebook and its HTML) and never touches the other reports. `env`: environment variables
    for the notebook's kernel only. Returns `report.json`'s dict."""
    import shutil


    notebook = Path(notebook)
    if not notebook.is_file():
        raise VadlabError(f"{notebook}: no such notebook")
    root = Path(root)
    name = name or notebook.stem
    params = dict(parameters or {})
    declared = _defaults(notebook)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise VadlabError(f"{notebook}: unknown parameter(s) {', '.join(unknown)}; its parameters: "
                          f"{', '.join(declared)}")
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "figures").mkdir(parents=True)
    executed = partial / f"{name}.ipynb"
    record = {"name": name, "notebook": str(notebook), "status": "ok", "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    t0 = time.perf_counter()
    env = {viz.EXPORT_ENV: str((partial / "figures").resolve()), **(env or {})}  # viz.save exports there
    try:
        _execute(notebook, executed, params, kernel="python3", progress=progress, cwd=cwd, env=env)
    except Exception as exc:  # noqa: BLE001  (any failure is recorded, the other reports go on)
        record.update(status="failed", **_failure(exc))
    record["seconds"] = round(time.perf_counter() - t0, 1)
    scraps = {}
    if executed.exists():
        try:
            scraps = read_notebook_scraps(executed)
        except Exception:  # noqa: BLE001  (a notebook that failed before recording anything)
            scraps = {}
        try:
            _html(executed, partial / f"{name}.html")
        except Exception as exc:  # noqa: BLE001
            record["html_error"] = f"{type(exc).__name__}: {exc}"
    metrics = {k: v for k, v in scraps.items() if k != "figures"}
    write_json(partial / "metrics.json", metrics)
    used = {**declared, **params}
    data_root = scraps.get("data_root") or used.get("data_root")
    write_json(partial / "provenance.json", {
        "notebook": str(notebook), "parameters": used, "packages": package_versions(), "git": git_state(),
        "seed": used.get("seed"), "device": _device(used.get("device"), scraps.get("device")),
        "data": data_provenance(data_root) if data_root and Path(data_root).is_dir() else {"root": data_root},
        "command": " ".join(sys.argv), "host": platform.node(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    })
    record["figures"] = sorted(p.name for p in (partial / "figures").glob("*.png"))
    record["key_numbers"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not
                             isinstance(v, bool)}
    write_json(partial / "report.json", record)
    target = root / name
    old = root / f".{name}.{os.getpid()}.old"
    if target.exists():
        os.replace(target, old)
    os.replace(partial, target)
    shutil.rmtree(old, ignore_errors=True)
    return record


def _device(asked, recorded) -> dict:
    """The device a notebook asked for and the one that means on this machine ("auto": CUDA when there is one)."""
    import torch

    used = recorded
    if used is None and isinstance(asked, str):
        used = "cuda" if asked == "auto" and torch.cuda.is_available() else ("cpu" if asked == "auto" else asked)
    return {"asked": asked, "used": used, "cuda_available": torch.cuda.is_available()}


def report_notebooks(notebooks: list[str | os.PathLike], root: str | os.PathLike = "reports",
                     parameters: dict | None = None, *, names: list[str] | None = None, progress: bool = False,
                     per_notebook: dict | None = None, jobs: int = 1, env: dict | None = None) -> list[dict]:
    """`build_report` for each notebook (each gets only the `parameters` it declares, plus `per_notebook[name]`),
    then `write_index`. A failing notebook is recorded and the others still run. `jobs` > 1 runs that many side by
    side, the cores shared among them (each kernel gets `$VADLAB_THREADS` and `$OMP_NUM_THREADS` = cores // jobs,
    at least 1), the first
    notebook alone first (the demo's comparison trains and evaluates what the others read). Returns the records in
    the order of `notebooks`. `env`: environment variables for every notebook's kernel."""
    from concurrent.futures import ThreadPoolExecutor

    from vadlab.threads import available_cores

    def one(i: int, extra: dict) -> dict:
        notebook = notebooks[i]
        name = names[i] if names else Path(notebook).stem
        declared = _defaults(Path(notebook)) if Path(notebook).is_file() else {}
        params = {k: v for k, v in (parameters or {}).items() if k in declared}
        params.update((per_notebook or {}).get(name, {}))
        rec = build_report(notebook, root, params, name=name, progress=progress, env={**(env or {}), **extra})
        print(f"{rec['name']}: {rec['status']}" + (f" at cell {rec.get('cell')}: {rec.get('error')}"
                                                   if rec["status"] != "ok" else f" ({rec['seconds']:.0f} s)"),
              flush=True)
        return rec

    jobs = max(1, min(int(jobs), len(notebooks)))
    if jobs == 1 or len(notebooks) < 3:
        records = [one(i, {}) for i in range(len(notebooks))]
    else:
        records = [one(0, {})]
        share = str(max(1, available_cores() // jobs))
        threads = {"VADLAB_THREADS": share, "OMP_NUM_THREADS": share}
        with ThreadPoolExecutor(jobs) as pool:
            records += list(pool.map(lambda i: one(i, threads), range(1, len(notebooks))))
    write_index(root)
    return records
