"""`vadlab data download`, end to end against a real HTTP server on 127.0.0.1 (http.server in a thread, with the
Range support written below) serving archives generated in the official UCSD Ped2 and CUHK Avenue layouts."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_importers import AVENUE_LABELS, make_avenue, make_ucsd  # generators of the official layouts

from vadlab.cli import main
from vadlab.data.download import DATASETS, DownloadError, check_archive, download_dataset
from vadlab.data.layout import load_layout
from vadlab.errors import DataError, VadlabError, VadlabWarning

# --------------------------------------------------------------------------------------------- the server

class Server:
    """Serves `files` (name -> bytes) at http://127.0.0.1:<port>/<name>; records every request's path and Range.

    `drop_after`: on the first request, send the headers of the whole file, then only that many bytes, then close the
    connection. `ignore_range`: answer 200 with the whole file to a Range request, as some servers do."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header or None)
        self.drop_after: int | None = None
        self.ignore_range = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                asked = self.headers.get("Range")
                server.requests.append((self.path, asked))
                if name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", asked or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                part = body[start:]
                if server.drop_after is not None and len(server.requests) == 1:
                    self.wfile.write(part[:server.drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # the loopback only, never through a proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


# --------------------------------------------------------------------------------------------- archives

def _tar_gz(folder: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return buf.getvalue()


def _zip(folder: Path, arcname: str, only: list[str] | None = None) -> bytes:
    """`folder` zipped under `arcname/`, or only its sub-folders `only`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if only is not None and rel.parts[0] not in only:
                continue
            zf.write(path, f"{arcname}/{rel.as_posix()}")
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def ucsd_archive(tmp_path_factory) -> bytes:
    """UCSD_Anomaly_Dataset.tar.gz in the official layout: UCSD_Anomaly_Dataset.v1p2/UCSDped2/{Train,Test}/..."""
    parent = tmp_path_factory.mktemp("ucsd") / "UCSD_Anomaly_Dataset.v1p2"
    make_ucsd(parent, "UCSDped2")
    return _tar_gz(parent, "UCSD_Anomaly_Dataset.v1p2")


@pytest.fixture(scope="module")
def avenue_archives(tmp_path_factory) -> tuple[bytes, bytes]:
    """Avenue_Dataset.zip ("Avenue Dataset/training_videos, testing_videos") and ground_truth_demo.zip
    ("ground_truth_demo/testing_label_mask/N_label.mat"), as the owners split them."""
    src = make_avenue(tmp_path_factory.mktemp("avenue"))
    videos = _zip(src, "Avenue Dataset", only=["training_videos", "testing_videos"])
    truth = _zip(src / "ground_truth_demo", "ground_truth_demo")
    return videos, truth


def assert_nothing_in(root: Path) -> None:
    assert not root.exists() or not any(root.iterdir()), sorted(p.name for p in root.rglob("*"))


# --------------------------------------------------------------------------------------------- the table

def test_table_names_every_dataset_with_its_importer():
    assert set(DATASETS) == {"ped1", "ped2", "avenue", "shanghaitech"}
    for ds in DATASETS.values():
        assert ds.source and ds.page.startswith("http")
        for arc in ds.archives:
            assert arc.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", arc.sha256)
            assert arc.url is not None or ds.note, f"{ds.name}: no address and no note saying what to do"
    assert DATASETS["shanghaitech"].archives[0].url is None  # no stable official address (OneDrive share only)


# --------------------------------------------------------------------------------------------- end to end

def test_download_import_check_ucsd(server, ucsd_archive, tmp_path):
    """The full path: the ped2 entry of the table (a mirror address on the loopback), verify, unpack, import."""
    server.files["UCSD_Anomaly_Dataset.tar.gz"] = ucsd_archive
    root = tmp_path / "ped2"
    layout = download_dataset("ped2", root, urls=[server.url("UCSD_Anomaly_Dataset.tar.gz")],
                              sha256=[_sha(ucsd_archive)], progress=False)
    assert [v.name for v in layout.training] == ["Train001", "Train002"]
    assert [v.name for v in layout.testing] == ["Test001", "Test002"]
    assert layout.testing[0].labels.tolist() == [0, 0, 1, 1, 1, 1, 0, 0]  # [3:6] of UCSDped2.m
    meta = json.loads((root / "meta.json").read_text())
    assert meta["dataset"] == "ped2" and meta["source_kind"] == "ucsd"
    assert meta["ground_truth"] == "in the archives: UCSD_Anomaly_Dataset.v1p2/UCSDped2/Test/UCSDped2.m"
    assert meta["download"][0]["sha256"] == _sha(ucsd_archive) and meta["download"][0]["verified"]
    # the verified archive stays for a rerun; no temp folder is left
    assert sorted(p.name for p in (root / ".download").iterdir()) == ["UCSD_Anomaly_Dataset.tar.gz"]
    assert sorted(p.name for p in root.iterdir()) == [".download", "meta.json", "testing", "training"]
    assert server.requests == [("/UCSD_Anomaly_Dataset.tar.gz", None)]
    # a second run finds the dataset there and fetches nothing
    again = download_dataset("ped2", root, urls=[server.url("UCSD_Anomaly_Dataset.tar.gz")],
                             sha256=[_sha(ucsd_archive)], progress=False)
    assert again.root == root and len(server.requests) == 1


def test_download_avenue_two_zip_archives(server, avenue_archives, tmp_path):
    videos, truth = avenue_archives
    server.files.update({"Avenue_Dataset.zip": videos, "ground_truth_demo.zip": truth})
    root = tmp_path / "avenue"
    layout = download_dataset("avenue", root, urls=[server.url("Avenue_Dataset.zip"),
                                                    server.url("ground_truth_demo.zip")],
                              sha256=[_sha(videos), _sha(truth)], progress=False, delete_archives=True)
    assert [v.labels.tolist() for v in layout.testing] == list(AVENUE_LABELS.values())
    assert all(v.masks is not None for v in layout.testing)
    assert not (root / ".download").exists()  # delete_archives: nothing but the dataset stays


def test_interrupted_download_resumes_with_a_range_request(server, ucsd_archive, tmp_path):
    server.files["a.tar.gz"] = ucsd_archive
    server.drop_after = 1000
    root = tmp_path / "ped2"
    with pytest.warns(VadlabWarning, match=r"connection .* after 1000 of \d+ bytes; resuming with "
                                           r"Range: bytes=1000- \(attempt 2 of 2\)"):
        download_dataset("ped2", root, urls=[server.url("a.tar.gz")], sha256=[_sha(ucsd_archive)], retries=1,
                         wait=0, progress=False)
    assert server.requests == [("/a.tar.gz", None), ("/a.tar.gz", "bytes=1000-")]
    meta = json.loads((root / "meta.json").read_text())
    archive = root / ".download" / "UCSD_Anomaly_Dataset.tar.gz"
    assert meta["download"][0]["sha256"] == _sha(archive.read_bytes()) == _sha(ucsd_archive)
    load_layout(root)


def test_interrupted_download_resumes_in_a_later_call(server, ucsd_archive, tmp_path):
    """No retries left: the call stops with DownloadError (exit 1) keeping the .part; the next call resumes it."""
    server.files["a.tar.gz"] = ucsd_archive
    server.drop_after = 1000
    root = tmp_path / "ped2"
    with pytest.raises(DownloadError, match=r"download interrupted \(connection .* after 1000 of \d+ bytes\); "
                                            r"1000 bytes kept in .*UCSD_Anomaly_Dataset.tar.gz.part: run the same "
                                            "command again to resume from there") as info:
        download_dataset("ped2", root, urls=[server.url("a.tar.gz")], sha256=[_sha(ucsd_archive)], retries=0,
                         progress=False)
    assert info.value.exit_status == 1
    part = root / ".download" / "UCSD_Anomaly_Dataset.tar.gz.part"
    assert part.read_bytes() == ucsd_archive[:1000]
    download_dataset("ped2", root, urls=[server.url("a.tar.gz")], sha256=[_sha(ucsd_archive)], progress=False)
    assert server.requests[-1] == ("/a.tar.gz", "bytes=1000-")
    assert not part.exists() and load_layout(root).testing


def test_server_ignoring_range_starts_over(server, ucsd_archive, tmp_path):
    server.files["a.tar.gz"] = ucsd_archive
    server.drop_after = 1000
    server.ignore_range = True
    root = tmp_path / "ped2"
    with pytest.warns(VadlabWarning, match="resuming with Range: bytes=1000-"), \
            pytest.warns(VadlabWarning, match="ignored the Range request .* the 1000 bytes of "
                                              "UCSD_Anomaly_Dataset.tar.gz.part are discarded and the download "
                                              "starts over"):
        download_dataset("ped2", root, urls=[server.url("a.tar.gz")], sha256=[_sha(ucsd_archive)], retries=1,
                         wait=0, progress=False)
    assert server.requests == [("/a.tar.gz", None), ("/a.tar.gz", "bytes=1000-")]
    assert _sha((root / ".download" / "UCSD_Anomaly_Dataset.tar.gz").read_bytes()) == _sha(ucsd_archive)


def test_part_already_complete_gets_416_and_is_used(server, ucsd_archive, tmp_path):
    server.files["a.tar.gz"] = ucsd_archive
    root = tmp_path / "ped2"
    (root / ".download").mkdir(parents=True)
    (root / ".download" / "UCSD_Anomaly_Dataset.tar.gz.part").write_bytes(ucsd_archive)
    download_dataset("ped2", root, urls=[server.url("a.tar.gz")], sha256=[_sha(ucsd_archive)], progress=False)
    assert server.requests == [("/a.tar.gz", f"bytes={len(ucsd_archive)}-")]
    load_layout(root)


# --------------------------------------------------------------------------------------------- faults

@pytest.mark.parametrize("root_exists", [False, True])
def test_wrong_checksum_is_named_and_leaves_nothing(server, ucsd_archive, tmp_path, root_exists):
    server.files["a.tar.gz"] = ucsd_archive
    root = tmp_path / "ped2"
    if root_exists:
        root.mkdir()
    wrong = "0" * 64
    with pytest.raises(DataError, match=f"UCSD_Anomaly_Dataset.tar.gz: SHA-256 mismatch: expected {wrong}, got "
                                        f"{_sha(ucsd_archive)} .*the file was removed and nothing was extracted"):
        download_dataset("ped2", root, urls=[server.url("a.tar.gz")], sha256=[wrong], progress=False)
    assert root.exists() == root_exists  # ROOT removed only when the call created it
    assert_nothing_in(root)


def test_table_checksum_is_checked_by_default(server, ucsd_archive, tmp_path):
    """A mirror serving something else than the official archive fails against the table's SHA-256."""
    server.files["a.tar.gz"] = ucsd_archive
    with pytest.raises(DataError, match=f"expected {DATASETS['ped2'].archives[0].sha256}, got"):
        download_dataset("ped2", tmp_path / "ped2", urls=[server.url("a.tar.gz")], progress=False)
    assert not (tmp_path / "ped2").exists()


def _evil_tar(kind: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        good = b"fine"
        info = tarfile.TarInfo("UCSD_Anomaly_Dataset.v1p2/readme.txt")
        info.size = len(good)
        tar.addfile(info, io.BytesIO(good))
        payload = b"pwned"
        if kind in ("dotdot", "absolute", "nested_dotdot"):
            name = {"dotdot": "../evil", "absolute": "/tmp/vadlab-evil-absolute",
                    "nested_dotdot": "UCSD_Anomaly_Dataset.v1p2/../../evil"}[kind]
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        else:
            info = tarfile.TarInfo("UCSD_Anomaly_Dataset.v1p2/link")
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = "/etc/passwd" if kind == "symlink" else "../../../etc/passwd"
            tar.addfile(info)
    return buf.getvalue()


def _evil_zip(kind: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Avenue Dataset/readme.txt", "fine")
        if kind == "symlink":
            info = zipfile.ZipInfo("Avenue Dataset/link")
            info.external_attr = (0o120777 << 16)  # a Unix symbolic link
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr({"dotdot": "../evil", "absolute": "/tmp/vadlab-evil-absolute",
                         "backslash": "..\\evil"}[kind], "pwned")
    return buf.getvalue()


@pytest.mark.parametrize("fmt,kind,why", [
    ("tar", "dotdot", "'../evil' is a '..' component"),
    ("tar", "nested_dotdot", "'UCSD_Anomaly_Dataset.v1p2/../../evil' is a '..' component"),
    ("tar", "absolute", "'/tmp/vadlab-evil-absolute' is an absolute path"),
    ("tar", "symlink", r"'UCSD_Anomaly_Dataset.v1p2/link' is a symbolic link \(to '/etc/passwd'\)"),
    ("tar", "hardlink", r"'UCSD_Anomaly_Dataset.v1p2/link' is a hard link \(to '../../../etc/passwd'\)"),
    ("zip", "dotdot", "'../evil' is a '..' component"),
    ("zip", "absolute", "'/tmp/vadlab-evil-absolute' is an absolute path"),
    ("zip", "backslash", r"'..\\\\evil' is a '..' component"),
    ("zip", "symlink", "'Avenue Dataset/link' is a symbolic link"),
])
def test_traversal_member_is_refused_and_nothing_written(server, tmp_path, fmt, kind, why):
    data = _evil_tar(kind) if fmt == "tar" else _evil_zip(kind)
    server.files["evil"] = data
    outer = tmp_path / "outer"  # ROOT's parent: '../evil' from ROOT/.download/extracted would land in ROOT
    root = outer / "ds"
    outer.mkdir()
    if fmt == "tar":
        ds, urls, sums = "ped2", [server.url("evil")], [_sha(data)]
    else:  # avenue's first archive is the evil one; the second is never fetched
        ds, urls, sums = "avenue", [server.url("evil"), server.url("evil")], [_sha(data)] * 2
    with pytest.raises(DataError, match=f"member {why}; refusing to extract this archive \\(nothing was extracted\\); "
                                        "the downloaded archive was removed"):
        download_dataset(ds, root, urls=urls, sha256=sums, progress=False)
    assert not root.exists()
    assert list(outer.iterdir()) == []
    assert not Path("/tmp/vadlab-evil-absolute").exists()
    assert not list(tmp_path.rglob("evil")) and not list(tmp_path.rglob("passwd"))


def test_unsafe_archive_in_an_existing_root_leaves_it_empty(server, tmp_path):
    data = _evil_tar("dotdot")
    server.files["evil"] = data
    root = tmp_path / "ds"
    root.mkdir()
    with pytest.raises(DataError, match="'../evil' is a '..' component"):
        download_dataset("ped2", root, urls=[server.url("evil")], sha256=[_sha(data)], progress=False)
    assert root.is_dir() and list(root.iterdir()) == []  # ROOT was there before: kept, and empty


def test_import_failure_keeps_the_verified_archive(server, tmp_path):
    """A safe archive that is not the official layout: the importer's error, with the archive kept for a rerun."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("something/else.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    data = buf.getvalue()
    server.files["a.tar.gz"] = data
    root = tmp_path / "ds"
    with pytest.raises(DataError, match=r"unpacked to something, and no folder in them is UCSD Ped2's official "
                                        r"layout .* \(the verified archives stay in .*\.download; the same command "
                                        r"reuses them\)"):
        download_dataset("ped2", root, urls=[server.url("a.tar.gz")], sha256=[_sha(data)], progress=False)
    assert sorted(p.name for p in root.rglob("*")) == [".download", "UCSD_Anomaly_Dataset.tar.gz"]


def test_check_archive_accepts_the_official_layouts(ucsd_archive, avenue_archives, tmp_path):
    for name, data in (("u.tar.gz", ucsd_archive), ("v.zip", avenue_archives[0]), ("t.zip", avenue_archives[1])):
        (tmp_path / name).write_bytes(data)
        assert len(check_archive(tmp_path / name)) > 3


# --------------------------------------------------------------------------------------------- options

def test_archive_given_by_hand_is_verified_and_kept(ucsd_archive, tmp_path):
    mine = tmp_path / "mine.tar.gz"
    mine.write_bytes(ucsd_archive)
    with pytest.raises(DataError, match=r"mine.tar.gz: SHA-256 mismatch: expected 1{64}, got .*given with "
                                        r"--archive; left as it is"):
        download_dataset("ped2", tmp_path / "a", archives=[mine], sha256=["1" * 64], progress=False)
    assert mine.read_bytes() == ucsd_archive and not (tmp_path / "a").exists()
    layout = download_dataset("ped2", tmp_path / "b", archives=[mine], sha256=[_sha(ucsd_archive)], progress=False)
    assert len(layout.testing) == 2 and mine.exists()
    assert layout.meta["download"][0]["url"] is None and layout.meta["download"][0]["archive"] == str(mine)
    assert not (tmp_path / "b" / ".download").exists()  # nothing downloaded, nothing kept


def test_unknown_checksum_needs_sha256_or_no_verify(server, ucsd_archive, tmp_path):
    server.files["a.tar.gz"] = ucsd_archive
    ds = DATASETS["ped2"]
    unknown = replace(ds, archives=(replace(ds.archives[0], url=server.url("a.tar.gz"), sha256=None),))
    with pytest.raises(VadlabError, match="no SHA-256 is known for UCSD_Anomaly_Dataset.tar.gz; pass --sha256 HEX"):
        download_dataset(unknown, tmp_path / "x", progress=False)
    assert server.requests == [] and not (tmp_path / "x").exists()  # refused before anything was fetched
    with pytest.warns(VadlabWarning, match=f"not verified \\(--no-verify\\); its SHA-256 is {_sha(ucsd_archive)}"):
        download_dataset(unknown, tmp_path / "x", verify=False, progress=False)
    meta = json.loads((tmp_path / "x" / "meta.json").read_text())
    assert meta["download"][0] == {"file": "UCSD_Anomaly_Dataset.tar.gz", "url": server.url("a.tar.gz"),
                                   "archive": str(tmp_path / "x" / ".download" / "UCSD_Anomaly_Dataset.tar.gz"),
                                   "sha256": _sha(ucsd_archive), "verified": False}


def test_http_404_is_a_download_error_leaving_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404 .*--archive FILE"):
        download_dataset("ped2", tmp_path / "r", urls=[server.url("missing")], progress=False)
    assert not (tmp_path / "r").exists()


def test_unreachable_address_leaves_nothing(tmp_path):
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match=r"cannot connect .*; nothing was downloaded \(after 2 attempt\(s\)\)"), \
            pytest.warns(VadlabWarning, match=r"cannot connect .*; retrying \(attempt 2 of 2\)"):
        download_dataset("ped2", tmp_path / "r", urls=[f"http://127.0.0.1:{port}/a"], retries=1, wait=0,
                         progress=False)
    assert not (tmp_path / "r").exists()


def test_root_holding_something_else_is_refused(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    with pytest.raises(VadlabError, match=r"r: not empty \(notes.txt\); give an empty or new folder for ped2"):
        download_dataset("ped2", root, urls=["http://127.0.0.1:9/x"], progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]


# --------------------------------------------------------------------------------------------- CLI

def test_cli_download_then_check(server, ucsd_archive, tmp_path, capsys):
    server.files["a.tar.gz"] = ucsd_archive
    root = tmp_path / "ped2"
    assert main(["data", "download", "ped2", str(root), "--url", server.url("a.tar.gz"),
                 "--sha256", _sha(ucsd_archive).upper(), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"sha256 {_sha(ucsd_archive)}  UCSD_Anomaly_Dataset.tar.gz (verified)" in out
    assert "testing   videos    2" in out and out.rstrip().endswith("ok")
    assert main(["data", "check", str(root)]) == 0


@pytest.mark.parametrize("argv,expect", [
    (["data", "download", "ped3", "R"], "unknown dataset 'ped3'; `vadlab data download` knows: ped1, ped2, avenue, "
                                        "shanghaitech"),
    (["data", "download", "shanghaitech", "R"], "shanghaitech: ShanghaiTech Campus has no stable official address"),
    (["data", "download", "ped2", "R", "--sha256", "xyz"], "--sha256 'xyz' for UCSD_Anomaly_Dataset.tar.gz: "
                                                           "expected 64 hexadecimal digits"),
    (["data", "download", "ped2", "R", "--url", "ftp://example.org/a.tgz"], "--url 'ftp://example.org/a.tgz': only "
                                                                            "http:// and https://"),
    (["data", "download", "avenue", "R", "--url", "http://127.0.0.1:9/a"], "--url given 1 time(s), but the "
                                                                           "download has 2 archive(s)"),
    (["data", "download", "ped2", "R", "--archive", "/nonexistent/a.tar.gz"], "--archive /nonexistent/a.tar.gz: "
                                                                              "no such file"),
])
def test_cli_bad_input_exits_2(argv, expect, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expect in err, err
    assert not (tmp_path / "R").exists()  # refused before anything was written or fetched


def test_cli_wrong_checksum_exits_2_with_the_message(server, ucsd_archive, tmp_path, capsys):
    server.files["a.tar.gz"] = ucsd_archive
    root = tmp_path / "ped2"
    assert main(["data", "download", "ped2", str(root), "--url", server.url("a.tar.gz"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vadlab: error: UCSD_Anomaly_Dataset.tar.gz: SHA-256 mismatch: expected "
                          f"{DATASETS['ped2'].archives[0].sha256}, got {_sha(ucsd_archive)}")
    assert not root.exists()

