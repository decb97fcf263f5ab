"""`vadlab data download NAME ROOT`: fetch an official dataset archive, verify it, unpack it safely, import it.

The steps, each one checked before the next starts:

1. the archive is streamed (standard-library `urllib`, a tqdm bar) into ``ROOT/.download/<file>.part``; a dropped
   connection is resumed with an HTTP ``Range`` request (a server that answers 200 instead of 206 ignored the range:
   the file starts over), ``retries`` times in one call, and a later call resumes the ``.part`` it finds;
2. its SHA-256 is checked against `DATASETS` (or ``--sha256``) before anything is unpacked; a mismatch removes the
   file and every folder this call created, and names the file, the expected and the actual hash;
3. every member of the archive (tar.gz or zip) is checked before anything is written: an absolute path, a ``..``
   component, a symbolic or hard link, a device or FIFO is a `DataError` naming the member;
4. the archives are unpacked into a temp folder under ``ROOT/.download`` that is renamed when complete;
5. the importer (`vadlab.data.importers.import_dataset`) writes the common layout, its folders are moved into ROOT
   (``meta.json`` last, with the addresses and hashes), and `check_layout` decodes every frame.

The verified archive stays in ``ROOT/.download`` (a rerun reuses it; ``delete_archives=True`` removes it after a
successful import). Network trouble is a `DownloadError` (exit status 1, the ``.part`` kept for a resume); bad
input (unknown name, malformed hash, a mismatch, an unsafe member, a ROOT holding something else) exits 2.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import stat
import tarfile
import time
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

from vadlab import guards
from vadlab.data.importers import detect_kind, import_dataset
from vadlab.data.layout import Layout, check_layout
from vadlab.errors import ConfigError, DataError, VadlabError, VadlabWarning
from vadlab.io import write_json

__all__ = ["DATASETS", "Archive", "Dataset", "DownloadError", "download_dataset", "fetch", "safe_extract",
           "sha256_file"]


@dataclass(frozen=True)
class Archive:
    """One file of a dataset's download, as published."""

    file: str  # the archive's file name (kept as ROOT/.download/<file>)
    url: str | None  # its official direct address; None where the owners publish none that a program can fetch
    sha256: str | None  # its SHA-256 (lower-case hex); None where no published value was found
    size: int | None = None  # its size in bytes; None where not published
    into: str = ""  # folder, relative to the extraction root, the archive is unpacked into ("" = the root itself)


@dataclass(frozen=True)
class Dataset:
    """A dataset `download_dataset` knows: where its archives are and how to import them."""

    name: str  # the NAME of `vadlab data download NAME ROOT`, also the dataset name in meta.json
    title: str  # human-readable name
    page: str  # the owners' page for the dataset
    kind: str  # the importer kind (`vadlab.data.importers.KINDS`)
    subfolder: str  # the folder of the unpacked archives the importer reads
    archives: tuple[Archive, ...]  # the files to fetch, unpacked in this order
    source: str  # where the addresses and checksums below were found
    note: str = ""  # what to do instead, where there is no stable official address


# UCSD: the address is the archive linked from the owners' page http://www.svcl.ucsd.edu/projects/anomaly/dataset.htm.
# The SHA-256 is the one anomalib checks (open-edge-platform/anomalib, src/anomalib/data/datamodules/video/ucsd_ped.py,
# DOWNLOAD_INFO, commit 37449969; its check_hash uses sha256); the owners publish none. The archive unpacks to
# UCSD_Anomaly_Dataset.v1p2/{UCSDped1,UCSDped2} (the same anomalib file moves that folder's contents up).
_UCSD = Archive(
    file="UCSD_Anomaly_Dataset.tar.gz",
    url="http://www.svcl.ucsd.edu/projects/anomaly/UCSD_Anomaly_Dataset.tar.gz",
    sha256="2329af326951f5097fdd114c50e853957d3e569493a49d22fc082a9fd791915b",
)
_UCSD_SOURCE = ("address: http://www.svcl.ucsd.edu/projects/anomaly/dataset.htm; SHA-256: anomalib "
                "(src/anomalib/data/datamodules/video/ucsd_ped.py)")

DATASETS: dict[str, Dataset] = {
    "ped1": Dataset("ped1", "UCSD Ped1", "http://www.svcl.ucsd.edu/projects/anomaly/dataset.htm", "ucsd",
                    "UCSD_Anomaly_Dataset.v1p2", (_UCSD,), _UCSD_SOURCE),
    "ped2": Dataset("ped2", "UCSD Ped2", "http://www.svcl.ucsd.edu/projects/anomaly/dataset.htm", "ucsd",
                    "UCSD_Anomaly_Dataset.v1p2", (_UCSD,), _UCSD_SOURCE),
    # CUHK Avenue: two archives linked from the owners' page, the videos and the ground truth. Addresses and SHA-256
    # as in anomalib (src/anomalib/data/datamodules/video/avenue.py, DATASET_DOWNLOAD_INFO and
    # ANNOTATIONS_DOWNLOAD_INFO); the owners publish no checksum. Avenue_Dataset.zip unpacks to "Avenue Dataset/",
    # ground_truth_demo.zip to "ground_truth_demo/" (anomalib moves both folders' contents), which goes inside
    # "Avenue Dataset/" where the importer looks for ground_truth_demo/testing_label_mask/.
    "avenue": Dataset(
        "avenue", "CUHK Avenue", "http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/dataset.html", "avenue",
        "Avenue Dataset",
        (Archive("Avenue_Dataset.zip", "http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/Avenue_Dataset.zip",
                 "fc9cb8432a11ca79c18aa180c72524011411b69d3b0ff27c8816e41c0de61531"),
         Archive("ground_truth_demo.zip",
                 "http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/ground_truth_demo.zip",
                 "60fec1728ec8f73a58aad3aeb5729d70a805a47e0b8eb4bf91ab67ef06386d77", into="Avenue Dataset")),
        "addresses: http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/dataset.html; SHA-256: anomalib "
        "(src/anomalib/data/datamodules/video/avenue.py)"),
    # ShanghaiTech Campus: no stable direct address. The owners' page (svip-lab/svip-lab.github.io,
    # dataset/campus_dataset.html, last changed 2024-10-10) links a OneDrive share, https://1drv.ms/u/s!AjjUqiJZsj8w
    # hLt-1ABerTT-9eH9Ag?e=eJbY6Y, that a program cannot fetch as a file; the page's history links OneDrive (2019-2020)
    # and the authors' own server http://101.32.75.151:8181/dataset/ (2021-2022), which others report unreachable.
    # anomalib (src/anomalib/data/datamodules/video/shanghaitech.py) fetches shanghaitech.tar.gz from that server with
    # the SHA-256 below; whether the OneDrive copy is the same file is unknown. The archive unpacks to shanghaitech/.
    "shanghaitech": Dataset(
        "shanghaitech", "ShanghaiTech Campus", "https://svip-lab.github.io/dataset/campus_dataset.html",
        "shanghaitech", "shanghaitech",
        (Archive("shanghaitech.tar.gz", None, "c13a827043b259ccf8493c9d9130486872992153a9d714fe229e523cd4c94116"),),
        "page: svip-lab/svip-lab.github.io dataset/campus_dataset.html; SHA-256 of shanghaitech.tar.gz from the "
        "authors' former server 101.32.75.151:8181: anomalib (src/anomalib/data/datamodules/video/shanghaitech.py)",
        note="the owners' page links only a OneDrive share, "
             "https://1drv.ms/u/s!AjjUqiJZsj8whLt-1ABerTT-9eH9Ag?e=eJbY6Y, which a program cannot fetch as a file, "
             "and the authors' former server 101.32.75.151:8181 is reported unreachable"),
}

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20  # bytes per read while streaming and hashing


class DownloadError(VadlabError):
    """The network failed (unreachable, an HTTP error, a connection dropped `retries` times): not bad input, so exit
    status 1; a partial download is kept as ``.part`` and the same command resumes it."""

    exit_status = 1


class DownloadStopped(DownloadError):
    """SIGINT or SIGTERM stopped a download: the bytes received are in the ``.part`` file, which the same command
    resumes. Exit status 128 + the signal number (130, 143)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_status = 128 + int(signum)


class _Dropped(Exception):
    """One attempt ended early; `fetch` retries with a Range request."""


# ----------------------------------------------------------------------------------------------- fetch

def _user_agent() -> str:
    from vadlab import __version__

    return f"vadlab/{__version__} (+urllib)"


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range: bytes a-b/total`` (or ``bytes */total``) header."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if match is None:
        return None, None
    first, total = match.groups()
    return (int(first) if first else None), (int(total) if total != "*" else None)


def _fetch_once(url: str, part: Path, timeout: float, bar) -> None:
    """One GET of `url` into `part`, from the byte `part` already holds; raises _Dropped if it ends early."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _user_agent()}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)  # noqa: S310 (http/https checked)
    except HTTPError as exc:
        if exc.code == 416 and have:  # nothing after byte `have`: complete, or longer than the file
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == have:
                return
            part.unlink()
            raise _Dropped(f"the server refused the range from byte {have} (HTTP 416, file size {total}); "
                           "starting over") from None
        if exc.code >= 500:
            raise _Dropped(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; the address may have moved: download the "
                            "archive by hand and pass --archive FILE, or give a mirror with --url") from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        raise _Dropped(f"cannot connect ({getattr(exc, 'reason', exc)})") from None
    with response:
        total = None
        if have and response.status == 206:
            first, total = _content_range(response.headers.get("Content-Range"))
            if first != have:
                raise DownloadError(f"{url}: asked for bytes from {have}, the server sent a range from {first} "
                                    f"(Content-Range {response.headers.get('Content-Range')!r})")
            mode = "ab"
        else:  # 200: the whole file (the first request, or a server that ignored the Range header)
            if have:
                warnings.warn(f"{url}: the server ignored the Range request (HTTP {response.status} instead of 206); "
                              f"the {have} bytes of {part.name} are discarded and the download starts over",
                              VadlabWarning, stacklevel=2)
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        bar.reset(total=total)
        bar.update(have)
        with open(part, mode) as out:
            while True:
                try:
                    chunk = response.read1(_CHUNK)  # what has arrived (up to _CHUNK): written as it comes
                except (OSError, http.client.HTTPException) as exc:
                    raise _Dropped(f"connection lost after {have} of {total} bytes ({type(exc).__name__})") from None
                if not chunk:
                    break
                out.write(chunk)
                have += len(chunk)
                bar.update(len(chunk))
    if total is not None and have < total:
        raise _Dropped(f"connection closed after {have} of {total} bytes")


def fetch(url: str, part: str | os.PathLike, *, retries: int = 3, timeout: float = 60.0, wait: float = 1.0,
          progress: bool = True) -> Path:
    """Stream `url` into `part`, resuming what `part` already holds; returns `part` once complete.

    A dropped connection is retried up to `retries` times with ``Range: bytes=<held>-`` (waiting `wait`, doubled each
    time); a server that answers 200 to it sends the whole file, which replaces the partial one. Raises
    `DownloadError` when the retries are spent, keeping `part` so a later call resumes it."""
    from vadlab.progress import tqdm

    part = Path(part)
    scheme = urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise VadlabError(f"--url {url!r}: only http:// and https:// addresses are fetched")
    with tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024, desc=part.name.removesuffix(".part"),
              disable=not progress) as bar, _stopped_by_signal(url, part):
        for attempt in range(retries + 1):
            try:
                _fetch_once(url, part, timeout, bar)
                return part
            except _Dropped as exc:
                held = part.stat().st_size if part.exists() else 0
                if attempt == retries and not held:
                    raise DownloadError(f"{url}: {exc}; nothing was downloaded (after {retries + 1} attempt(s))") \
                        from None
                if attempt == retries:
                    raise DownloadError(
                        f"{url}: download interrupted ({exc}); {held} bytes kept in {part}: run the same command "
                        "again to resume from there") from None
                how = f"resuming with Range: bytes={held}-" if held else "retrying"
                warnings.warn(f"{url}: {exc}; {how} (attempt {attempt + 2} of {retries + 1})", VadlabWarning,
                              stacklevel=2)
                time.sleep(wait * 2 ** attempt)
    return part  # not reached


@contextmanager
def _stopped_by_signal(url: str, part: Path):
    """SIGINT/SIGTERM while fetching: the `.part` file is closed (its bytes flushed) and `DownloadStopped` says where
    the bytes are."""
    try:
        with guards.signals_raise():
            yield
    except guards.Signalled as sig:
        held = part.stat().st_size if part.exists() else 0
        raise DownloadStopped(f"{sig.name}: the download of {url} stopped; the {held} bytes received are kept in "
                              f"{part}: run the same command again to resume from there", sig.signum) from None


# ----------------------------------------------------------------------------------------------- verify

def sha256_file(path: str | os.PathLike, *, progress: bool = False) -> str:
    """The SHA-256 (lower-case hex) of a file, read in 1 MiB chunks."""
    from vadlab.progress import tqdm

    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
                                      desc=f"sha256 {path.name}", disable=not progress) as bar:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _checked_hex(value: str, what: str) -> str:
    hex_ = value.strip().lower()
    if not _HEX64.fullmatch(hex_):
        raise VadlabError(f"--sha256 {value!r} for {what}: expected 64 hexadecimal digits")
    return hex_


# ----------------------------------------------------------------------------------------------- extract

def _unsafe_name(name: str) -> str | None:
    """Why an archive member name would land outside the extraction folder, or None if it would not."""
    if not name or "\x00" in name:
        return "an empty name or a NUL byte"
    posix = name.replace("\\", "/")  # a backslash is a separator on Windows: judge the name as it would be there
    if posix.startswith("/") or re.match(r"[A-Za-z]:", posix):
        return "an absolute path"
    if ".." in PurePosixPath(posix).parts:
        return "a '..' component"
    return None


def _tar_members(archive: Path) -> list[tarfile.TarInfo]:
    """Every member of a tar archive, each checked; raises DataError on the first unsafe one."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive}: cannot read the tar archive ({exc})") from exc
    for m in members:
        why = _unsafe_name(m.name)
        if why is None and m.issym():
            why = f"a symbolic link (to {m.linkname!r})"
        elif why is None and m.islnk():
            why = f"a hard link (to {m.linkname!r})"
        elif why is None and not (m.isfile() or m.isdir()):
            why = "a device, FIFO or other special file"
        if why is not None:
            raise DataError(f"{archive}: member {m.name!r} is {why}; refusing to extract this archive "
                            "(nothing was extracted)")
    return members


def _zip_members(archive: Path) -> list[zipfile.ZipInfo]:
    """Every entry of a zip archive, each checked; raises DataError on the first unsafe one."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: cannot read the zip archive ({exc})") from exc
    for info in infos:
        why = _unsafe_name(info.filename)
        mode = info.external_attr >> 16  # the Unix mode, where the zip was made on Unix
        if why is None and stat.S_ISLNK(mode):
            why = "a symbolic link"
        if why is not None:
            raise DataError(f"{archive}: member {info.filename!r} is {why}; refusing to extract this archive "
                            "(nothing was extracted)")
    return infos


def _archive_type(archive: Path) -> str:
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise DataError(f"{archive}: neither a zip nor a tar archive")


def check_archive(archive: str | os.PathLike) -> list:
    """Check every member of a tar(.gz) or zip archive without writing anything; returns the members.

    Raises DataError naming the first member that is an absolute path, has a ``..`` component, or is a link or a
    special file."""
    archive = Path(archive)
    return _tar_members(archive) if _archive_type(archive) == "tar" else _zip_members(archive)


def _within(dest: Path, name: str) -> Path:
    """`dest / name`, refusing (as a last guard) a path that resolves outside `dest`."""
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        raise DataError(f"member {name!r} resolves to {target}, outside {dest}; refusing to extract it")
    return target


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, *, progress: bool = True,
                 members: list | None = None) -> None:
    """Unpack a tar(.gz) or zip archive into the folder `dest` after `check_archive` accepted every member
    (`members`: the list a previous check returned, to spare a second pass over a large archive)."""
    from vadlab.progress import tqdm

    archive, dest = Path(archive), Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    if _archive_type(archive) == "tar":
        members = members if members is not None else _tar_members(archive)
        extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # the standard library's own guard too
        with tarfile.open(archive, "r:*") as tar:
            for m in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not progress):
                _within(dest, m.name)
                tar.extract(m, dest, **extra)
    else:
        infos = members if members is not None else _zip_members(archive)
        with zipfile.ZipFile(archive) as zf:
            for info in tqdm(infos, desc=f"extract {archive.name}", unit="file", disable=not progress):
                _within(dest, info.filename)
                zf.extract(info, dest)


# ----------------------------------------------------------------------------------------------- the command

def get_dataset(name: str) -> Dataset:
    """The `DATASETS` entry called `name`; ConfigError naming the valid names otherwise."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; `vadlab data download` knows: {', '.join(DATASETS)}")
    return DATASETS[name]


@dataclass
class _Item:
    """One archive of this download: where it comes from and what it must hash to."""

    archive: Archive
    url: str | None  # the address to fetch (None with a local file)
    local: Path | None  # an archive the user already has (--archive)
    expected: str | None  # the SHA-256 to check; None with verify=False


def _plan(ds: Dataset, urls, archives, sha256, verify: bool) -> list[_Item]:
    """Match the overrides to the dataset's archives and check them, before anything is written or fetched."""
    n = len(ds.archives)
    names = ", ".join(a.file for a in ds.archives)
    for flag, given in (("--url", urls), ("--archive", archives), ("--sha256", sha256)):
        if given and len(given) != n:
            raise VadlabError(f"{ds.name}: {flag} given {len(given)} time(s), but the download has {n} archive(s) "
                              f"({names}): give one per archive, in that order")
    items = []
    for i, arc in enumerate(ds.archives):
        local = Path(archives[i]).expanduser() if archives else None
        url = urls[i] if urls else (arc.url if local is None else None)
        if local is not None and not local.is_file():
            raise VadlabError(f"--archive {local}: no such file")
        if local is None and url is None:
            raise VadlabError(
                f"{ds.name}: {ds.title} has no stable official address ({ds.note}). Download {arc.file} by hand "
                f"from {ds.page}, then run `vadlab data download {ds.name} ROOT --archive FILE` (checked against "
                f"SHA-256 {arc.sha256 or 'unknown'}; a copy packed differently needs --sha256 HEX or --no-verify), or "
                f"unpack it and run `vadlab data import {ds.kind} SRC ROOT`; a mirror you trust works with --url URL")
        if local is None and urlparse(url).scheme not in ("http", "https"):
            raise VadlabError(f"--url {url!r}: only http:// and https:// addresses are fetched")
        expected = _checked_hex(sha256[i], arc.file) if sha256 else arc.sha256
        if expected is None and verify:
            raise VadlabError(f"{ds.name}: no SHA-256 is known for {arc.file}; pass --sha256 HEX from a source you "
                              "trust, or --no-verify to skip the check (the computed hash is then printed)")
        items.append(_Item(arc, url, local, expected if verify else None))
    return items


def _check_root(root: Path, ds: Dataset) -> Layout | None:
    """Refuse a ROOT that holds something else; the dataset itself if this command already put it there."""
    if root.exists() and not root.is_dir():
        raise VadlabError(f"{root}: is a file; ROOT names the folder the dataset goes into")
    if not root.exists():
        return None
    entries = sorted(p.name for p in root.iterdir() if p.name != ".download")
    if not entries:
        return None
    meta = root / "meta.json"
    if meta.is_file():
        import json

        try:
            info = json.loads(meta.read_text())
        except (ValueError, OSError):
            info = {}
        if info.get("dataset") == ds.name and "download" in info:
            return check_layout(root)
    raise VadlabError(f"{root}: not empty ({', '.join(entries[:5])}{', ...' if len(entries) > 5 else ''}); give "
                      f"an empty or new folder for {ds.name}")


def _obtain(item: _Item, folder: Path, *, retries: int, timeout: float, wait: float,
            progress: bool) -> tuple[Path, str]:
    """The verified archive file (downloaded into `folder`, or the user's own) and its SHA-256."""
    if item.local is not None:
        path = item.local
    else:
        path = folder / item.archive.file
        if not path.is_file():
            part = fetch(item.url, folder / f"{item.archive.file}.part", retries=retries, timeout=timeout, wait=wait,
                         progress=progress)
            actual = sha256_file(part, progress=progress)
            if item.expected is not None and actual != item.expected:
                part.unlink()
                raise _Mismatch(f"{item.archive.file}: SHA-256 mismatch: expected {item.expected}, got {actual} "
                                f"(downloaded from {item.url}); the file was removed and nothing was extracted")
            os.replace(part, path)
            return path, actual
    actual = sha256_file(path, progress=progress)
    if item.expected is not None and actual != item.expected:
        origin = "given with --archive; left as it is" if item.local is not None else "removed"
        if item.local is None:
            path.unlink()
        raise _Mismatch(f"{path}: SHA-256 mismatch: expected {item.expected}, got {actual} ({origin}); nothing was "
                        "extracted")
    return path, actual


class _Mismatch(DataError):
    """A checksum mismatch (a DataError; `download_dataset` also removes the folders it created)."""


def _find_source(extracted: Path, ds: Dataset) -> Path:
    """The folder of the unpacked archives the importer reads: `ds.subfolder`, else the one folder (two levels
    down at most) that `detect_kind` says is `ds.kind`."""
    if (extracted / ds.subfolder).is_dir():
        return extracted / ds.subfolder
    found = []
    for folder in [extracted, *extracted.iterdir(), *(p for d in extracted.iterdir() if d.is_dir()
                                                      for p in d.iterdir())]:
        if folder.is_dir():
            try:
                if detect_kind(folder) == ds.kind:
                    found.append(folder)
            except DataError:
                pass
    if not found:
        tops = ", ".join(sorted(p.name for p in extracted.iterdir())) or "nothing"
        raise DataError(f"{extracted}: the archives unpacked to {tops}, and no folder in them is {ds.title}'s "
                        f"official layout (expected {ds.subfolder}/)")
    return found[0]


def download_dataset(name: str | Dataset, root: str | os.PathLike, *, urls: list[str] | None = None,
                     archives: list[str | os.PathLike] | None = None, sha256: list[str] | None = None,
                     verify: bool = True, retries: int = 3, timeout: float = 60.0, wait: float = 1.0,
                     delete_archives: bool = False, progress: bool = True) -> Layout:
    """Download, verify, unpack and import dataset `name` into ROOT (the common layout); returns its Layout.

    `urls` (mirrors), `archives` (files already downloaded) and `sha256` (checksums) give one value per archive of
    the dataset, in the order of `DATASETS[name].archives`. `verify=False` skips the checksum (it is still computed
    and recorded in meta.json). See the module docstring for what each failure leaves behind."""
    ds = name if isinstance(name, Dataset) else get_dataset(name)
    root = Path(root).expanduser()
    items = _plan(ds, urls, archives, sha256, verify)
    done = _check_root(root, ds)
    if done is not None:
        return done
    created_root = not root.exists()
    folder = root / ".download"
    created_folder = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    extracted = folder / "extracted"
    layout_dir = folder / "layout"
    stage = "fetch"
    files: list[tuple[_Item, Path, str]] = []
    try:
        for item in items:
            path, actual = _obtain(item, folder, retries=retries, timeout=timeout, wait=wait, progress=progress)
            if item.expected is None:
                warnings.warn(f"{path.name}: not verified (--no-verify); its SHA-256 is {actual}", VadlabWarning,
                              stacklevel=2)
            files.append((item, path, actual))
        stage = "extract"
        checked = [check_archive(path) for _, path, _ in files]  # every archive is checked before any is unpacked
        for stale in (extracted, layout_dir):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = folder / f"extracted.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for (item, path, _), members in zip(files, checked):
            safe_extract(path, tmp / item.archive.into, progress=progress, members=members)
        os.replace(tmp, extracted)
        stage = "import"
        src = _find_source(extracted, ds)
        import_dataset(ds.kind, src, layout_dir, name=ds.name, progress=progress)
        meta = _read_meta(layout_dir / "meta.json")
        for key, value in meta.items():  # paths into the unpacked temp folder, which is removed: name them by archive
            for prefix in {str(extracted), str(extracted.resolve())}:
                if isinstance(value, str) and value.startswith(prefix + os.sep):
                    meta[key] = f"in the archives: {value[len(prefix) + 1:]}"
        meta["source"] = f"{ds.page} ({', '.join(item.archive.file for item, _, _ in files)})"
        meta["download"] = [{"file": item.archive.file, "url": item.url, "sha256": actual,
                             "verified": item.expected is not None,
                             "archive": None if delete_archives and item.local is None else str(path)}
                            for item, path, actual in files]
        write_json(layout_dir / "meta.json", meta)
        for child in sorted(layout_dir.iterdir(), key=lambda p: p.name == "meta.json"):  # meta.json last
            os.replace(child, root / child.name)
        layout_dir.rmdir()
    except DataError as exc:
        downloaded = [path for item, path, _ in files if item.local is None]
        if stage == "import" and downloaded:  # the archives are good: keep them for a rerun or `vadlab data import`
            raise DataError(f"{exc} (the verified archives stay in {folder}; the same command reuses them)") from exc
        if stage == "extract":  # an unsafe or unreadable archive is removed like a mismatched one
            for path in downloaded:
                path.unlink(missing_ok=True)
        _remove_created(root, created_root, folder, created_folder)
        if stage == "extract" and downloaded:
            raise DataError(f"{exc}; the downloaded archive was removed") from exc
        raise
    except DownloadError:  # downloads so far are kept for a resume; a call that got nothing leaves nothing
        if not any(p.stat().st_size for p in folder.iterdir() if p.is_file()):
            _remove_created(root, created_root, folder, created_folder)
        raise
    finally:
        shutil.rmtree(extracted, ignore_errors=True)
        shutil.rmtree(layout_dir, ignore_errors=True)
        for tmp in folder.glob("*.partial-*") if folder.exists() else ():
            shutil.rmtree(tmp, ignore_errors=True)
    if delete_archives:
        for item, path, _ in files:
            if item.local is None:
                path.unlink()
    if not any(folder.iterdir()):  # nothing kept (--archive or delete_archives)
        folder.rmdir()
    return check_layout(root)


def _read_meta(path: Path) -> dict:
    import json

    return json.loads(path.read_text()) if path.is_file() else {}


def _remove_created(root: Path, created_root: bool, folder: Path, created_folder: bool) -> None:
    """Remove what a failed call created: ROOT if it made ROOT, else ROOT/.download if it made that."""
    if created_root:
        shutil.rmtree(root, ignore_errors=True)
    elif created_folder:
        shutil.rmtree(folder, ignore_errors=True)
    elif folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
