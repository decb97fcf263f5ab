"""Property-based fuzz of the dataset parsers (hypothesis).

1. UCSD ``UCSDpedN.m`` (`parse_ucsd_m`): valid ground truth written in the MATLAB variants the parser supports
   round-trips exactly; arbitrary text and byte mutations of a valid file give either a well-formed result
   (1-based, first <= last) or a DataError naming the file, never another exception.
2. Avenue ``N_label.mat`` (`_load_vol_label`): valid volLabel cell arrays come back unchanged; truncated,
   mutated, misnamed, mistyped or empty files give a DataError naming the file (or, for a truncation that
   leaves volLabel whole, the original masks), never a crash of scipy's reader.
3. Per-frame label arrays (`layout._load_labels`, the preprocessed ``frame_labels_<ds>.npy``): any dtype, shape,
   value and length is either accepted as exactly the 0/1 labels it holds, of the right length, or rejected with
   a DataError naming the file and the problem; nothing is truncated, padded or reinterpreted.

No example database is kept (``database=None``): a failure prints the falsifying example, to paste into an
``@example``. (Hypothesis still caches literals in ``.hypothesis/constants``, a folder it git-ignores itself.)
"""

from __future__ import annotations

import io
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest
from conftest import PED2_MINI, skip_or_fail_without_ped2
from hypothesis import example, given, reject, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.io import savemat

from vadlab.data.importers import _load_vol_label, import_dataset, parse_ucsd_m
from vadlab.data.layout import _load_labels
from vadlab.errors import DataError


def fuzz(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, database=None)


def _in_tmp(name: str, data: bytes, fn):
    """Write `data` to a fresh temp file called `name` and return `fn(path)` (per example: no shared state)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return fn(path)


def _raises_data_error_naming(path: Path, fn, *args) -> DataError | None:
    """`fn(path, *args)`'s DataError (asserting it names `path`), or None when it returned; any other exception
    propagates and fails the example."""
    try:
        fn(path, *args)
    except DataError as exc:
        assert str(path) in str(exc), f"DataError does not name the file: {exc}"
        return exc
    return None


# =============================================================================================== 1. UCSD .m

class Style(NamedTuple):
    """How a ground-truth file is spelled. Per-statement fields are cycled over the statements."""

    header: str = "TestVideoFile = {};"
    newline: str = "\n"
    slots: tuple[str, ...] = ("end+1",)  # "#" is replaced by the explicit 1-based cell index
    eqs: tuple[str, ...] = (" = ",)
    pads: tuple[str, ...] = ("",)  # just inside the brackets
    seps: tuple[str, ...] = (", ",)  # between ranges
    ends: tuple[str, ...] = (";",)  # after the closing bracket, trailing comments included
    indents: tuple[str, ...] = ("",)
    fillers: tuple[str, ...] = ("",)  # whole lines before a statement: blank, comments, block comments
    joins: tuple[bool, ...] = (False,)  # put the statement on the previous statement's line (MATLAB allows it)
    final_newline: bool = True


CANONICAL = Style()  # how the official UCSDped1.m / UCSDped2.m are written

# The official UCSDped2.m ground truth (test_real_ped2_m_is_the_canonical_rendering checks it against the file).
PED2_SPEC = [[(61, 180)], [(95, 180)], [(1, 146)], [(31, 180)], [(1, 129)], [(1, 159)], [(46, 180)], [(1, 180)],
             [(1, 120)], [(1, 150)], [(1, 180)], [(88, 180)]]

HEADERS = ["", "TestVideoFile = {};", "TestVideoFile={};", "% UCSD Ped2 frame-level ground truth\nTestVideoFile = {};",
           "TestVideoFile = {}; % one cell per test video"]
SLOTS = ["end+1", "end + 1", " end+1 ", "end +1", "#", " # "]
EQS = [" = ", "=", " =", "= ", "\t=\t", "  =  "]
PADS = ["", " ", "  ", "\t"]
SEPS = [", ", ",", " ", "  ", "\t", " , ", ",\t"]
ENDS = [";", "", " ;", ";  ", ",", "; % trailing comment", " % gt_frame = [1:2] in a comment", ";%",
        ";% TestVideoFile{end+1}.gt_frame = [7:8];", "\t;\t"]
INDENTS = ["", "  ", "\t", "    "]
FILLERS = ["", "\n", "   \n", "% a comment\n", "%%\n", "%% Test video\n", "% TestVideoFile{end+1}.gt_frame = [3:4];\n",
           "%{\nTestVideoFile{end+1}.gt_frame = [1:2];\n%}\n", "  %{\n  anything [1:\n  %{\n nested\n  %}\n%}\n",
           "%}\n"]


def _cycle(values: tuple, i: int):
    return values[i % len(values)]


def render_m(spec: list[list[tuple[int, int]]], style: Style = CANONICAL) -> str:
    """MATLAB text assigning `spec[i]` (1-based inclusive frame ranges) to TestVideoFile{i + 1}.gt_frame."""
    lines = style.header.splitlines()
    joinable = False  # the previous statement ended with ; or , and no comment: another may follow on its line
    for i, ranges in enumerate(spec):
        slot = _cycle(style.slots, i).replace("#", str(i + 1))
        pad = _cycle(style.pads, i)
        body = _cycle(style.seps, i).join(f"{a}:{b}" for a, b in ranges)
        end = _cycle(style.ends, i)
        stmt = f"TestVideoFile{{{slot}}}.gt_frame{_cycle(style.eqs, i)}[{pad}{body}{pad}]{end}"
        if joinable and _cycle(style.joins, i):
            lines[-1] += " " + stmt
        else:
            lines.extend(_cycle(style.fillers, i).splitlines())
            lines.append(_cycle(style.indents, i) + stmt)
        joinable = "%" not in end and end.strip()[-1:] in (";", ",")
    text = style.newline.join(lines)
    return text + style.newline if style.final_newline else text


@st.composite
def gt_specs(draw, max_videos: int = 12) -> list[list[tuple[int, int]]]:
    """Per test video 1..3 disjoint increasing 1-based ranges [first, last] (first == last allowed)."""
    spec = []
    for _ in range(draw(st.integers(1, max_videos))):
        ranges, last = [], 0
        for _ in range(draw(st.integers(1, 3))):
            first = last + draw(st.integers(1, 400) | st.integers(1, 10**6))
            last = first + draw(st.integers(0, 400))
            ranges.append((first, last))
        spec.append(ranges)
    return spec


def _some(values: list[str]):
    return st.lists(st.sampled_from(values), min_size=1, max_size=4).map(tuple)


styles = st.builds(
    Style, header=st.sampled_from(HEADERS), newline=st.sampled_from(["\n", "\r\n"]), slots=_some(SLOTS),
    eqs=_some(EQS), pads=_some(PADS), seps=_some(SEPS), ends=_some(ENDS), indents=_some(INDENTS),
    fillers=_some(FILLERS), joins=st.lists(st.booleans(), min_size=1, max_size=4).map(tuple),
    final_newline=st.booleans(),
)


def test_real_ped2_m_is_the_canonical_rendering():
    """Anchor: the renderer's canonical style is byte for byte the official file, and it parses to PED2_SPEC."""
    skip_or_fail_without_ped2()
    real = PED2_MINI / "Test" / "UCSDped2.m"
    assert real.read_bytes() == render_m(PED2_SPEC).encode()
    assert parse_ucsd_m(real) == {i + 1: ranges for i, ranges in enumerate(PED2_SPEC)}


def _parse_text(text: str) -> dict:
    return _in_tmp("UCSDped2.m", text.encode(), parse_ucsd_m)


@fuzz(500)
@given(spec=gt_specs(), style=styles)
@example(spec=PED2_SPEC, style=CANONICAL)
# regression: a second statement on a line was dropped, shifting every later video's ground truth by one
@example(spec=[[(1, 5)], [(2, 6)], [(3, 7)]], style=CANONICAL._replace(joins=(True,)))
# regression: `{end+1}` after an explicit lower index must follow MATLAB (numel + 1), as the explicit forms do
@example(spec=[[(1, 5)], [(2, 6)], [(3, 7)]], style=CANONICAL._replace(slots=("#", "end+1")))
# regression: a `%{ ... %}` block comment hides the statements in it
@example(spec=[[(4, 9)], [(10, 11)]], style=CANONICAL._replace(fillers=(FILLERS[7], FILLERS[8])))
def test_m_round_trip(spec, style):
    assert _parse_text(render_m(spec, style)) == {i + 1: ranges for i, ranges in enumerate(spec)}


def _check_m(path: Path) -> None:
    """parse_ucsd_m gives a well-formed result or a DataError naming the file; nothing else."""
    try:
        out = parse_ucsd_m(path)
    except DataError as exc:
        assert str(path) in str(exc), f"DataError does not name the file: {exc}"
        return
    assert isinstance(out, dict) and out
    for index, ranges in out.items():
        assert type(index) is int and index >= 1, f"cell index {index!r}"
        for first, last in ranges:
            assert type(first) is int and type(last) is int and 1 <= first <= last, f"range {first}:{last}"


M_TOKENS = ["TestVideoFile", "{", "}", "end", "+", "1", "0", "7", "42", ".", "gt_frame", "=", "[", "]", ":", ",", ";",
            " ", "\t", "\n", "\r\n", "\r", "%", "%{", "%}", "-", "...", "'", "TestVideoFile{end+1}.gt_frame = [",
            "TestVideoFile = {};", "\u00b2", "\u0663", "\u2028", "\x0b", "\x0c", "\x00", "\ufffd", "\u00e9", "9" * 12,
            "9" * 5000]
BODY_TOKENS = ["0", "1", "7", "42", "9" * 12, "9" * 5000, ":", ",", ";", " ", "\t", "-", "+", ".", "e", "[", "]", "'",
               "...", "end", "\u00b2", "\u0663", "\uff11", "\u00a0"]
SLOT_TOKENS = ["end", "+", "1", "2", "0", " ", "-", "\u00b2", "\u0663", "9" * 12, "9" * 5000]
TAILS = [";", "", " % comment", "; TestVideoFile{end+1}.gt_frame = [1:2];", " + 1;", "'", ",", "\n%{\n", "x"]
# free text from MATLAB-ish tokens, and single statements whose cell index and frame ranges are garbled
m_garbage = st.lists(st.sampled_from(M_TOKENS) | st.text(max_size=4), max_size=40).map("".join) | st.builds(
    "TestVideoFile{{{}}}.gt_frame = [{}]{}".format,
    st.lists(st.sampled_from(SLOT_TOKENS), max_size=4).map("".join),
    st.lists(st.sampled_from(BODY_TOKENS), max_size=12).map("".join),
    st.sampled_from(TAILS),
)


@fuzz(600)
@given(text=m_garbage)
@example(text="TestVideoFile{end+1}.gt_frame = [1:\u00b2];")  # regression: int('²') ValueError
@example(text="TestVideoFile{end+1}.gt_frame = [1:" + "9" * 5000 + "];")  # regression: int() digit limit
@example(text="TestVideoFile{\u00b2}.gt_frame = [1:2];")
@example(text="TestVideoFile{" + "9" * 5000 + "}.gt_frame = [1:2];")
@example(text="TestVideoFile{0}.gt_frame = [1:2];")  # regression: cell index 0 was accepted
@example(text="TestVideoFile{end+1}.gt_frame = [0:5];\nTestVideoFile{end+1}.gt_frame = [5:4];")
def test_m_garbage_text(text):
    _in_tmp("UCSDped2.m", text.encode("utf-8", "surrogatepass"), _check_m)


MUTATION_INSERTS = [b"0", b"-", b":", b"]", b"[", b"{", b"}", b"%", b"%{\n", b"\n%}\n", b"\n", b"\r", b",", b";",
                    b"\xff\xfe", b"\xc2\xb2", b"\xd9\xa3", b"99999999999", b"{end+1}", b"gt_frame", b"...", b"\x00"]


@st.composite
def mutated_m_files(draw) -> bytes:
    """A valid ground-truth file (the official Ped2 one or a generated one) with 1..4 byte-level edits."""
    spec = draw(st.just(PED2_SPEC) | gt_specs(max_videos=4))
    data = bytearray(render_m(spec, draw(st.just(CANONICAL) | styles)).encode())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "truncate"]))
        i = draw(st.integers(0, len(data)))
        j = draw(st.integers(i, min(len(data), i + 12)))
        if op == "delete":
            del data[i:j]
        elif op == "insert":
            data[i:i] = draw(st.sampled_from(MUTATION_INSERTS) | st.binary(min_size=1, max_size=6))
        elif op == "replace" and i < len(data):
            data[i] = draw(st.integers(0, 255))
        elif op == "duplicate":
            data[j:j] = data[i:j]
        elif op == "truncate":
            del data[i:]
    return bytes(data)


@fuzz(500)
@given(data=mutated_m_files() | st.binary(max_size=300))
@example(data=b"")
@example(data=b"\xff\xfe\x00T\x00e\x00s\x00t")  # not UTF-8
@example(data=render_m(PED2_SPEC).encode().replace(b"[61:180]", b"[61:-180]"))
def test_m_mutated_bytes(data):
    _in_tmp("UCSDped2.m", data, _check_m)


# =============================================================================================== 2. Avenue .mat

def _cells(items: list, column: bool = False) -> np.ndarray:
    """A MATLAB cell array (1 x n, or n x 1) holding `items`."""
    cells = np.empty((len(items), 1) if column else (1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cells.flat[i] = item
    return cells


def _mat_bytes(variables: dict, compress: bool = False) -> bytes:
    buf = io.BytesIO()
    savemat(buf, variables, do_compression=compress)
    return buf.getvalue()


class VolLabel(NamedTuple):
    masks: list[np.ndarray]
    column: bool  # n x 1 cell instead of the official 1 x n
    compress: bool
    extra: bool  # other variables before and after volLabel

    def to_bytes(self) -> bytes:
        variables = {"volLabel": _cells(self.masks, self.column)}
        if self.extra:
            variables = {"aaa": np.arange(4.0), **variables, "zzz": _cells(["note", np.eye(2)])}
        return _mat_bytes(variables, self.compress)


@st.composite
def vol_labels(draw) -> VolLabel:
    n, h, w = draw(st.integers(1, 6)), draw(st.integers(1, 10)), draw(st.integers(1, 12))
    dtype = draw(st.sampled_from([np.bool_, np.uint8, np.float64, np.int16]))
    masks = [draw(hnp.arrays(np.uint8, (h, w), elements=st.integers(0, 1))).astype(dtype) for _ in range(n)]
    return VolLabel(masks, draw(st.booleans()), draw(st.booleans()), draw(st.booleans()))


def _assert_same_masks(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, m in zip(got, want):
        assert g.shape == m.shape and g.dtype.kind in "biuf"
        np.testing.assert_array_equal(g, m)


@fuzz(100)
@given(vol=vol_labels())
@example(vol=VolLabel([np.eye(300, 400, dtype=np.uint8), np.ones((300, 400), bool)], False, True, True))  # > 64 KiB
@example(vol=VolLabel([np.ones((1, 1), np.uint8)] * 3, True, False, False))  # 1-byte data: small data elements
def test_vol_label_round_trip(vol):
    _assert_same_masks(_in_tmp("1_label.mat", vol.to_bytes(), _load_vol_label), vol.masks)


@fuzz(150)
@given(vol=vol_labels(), data=st.data())
def test_vol_label_truncated(vol, data):
    """A cut file is a DataError, unless the cut spares volLabel (then it must read back unchanged)."""
    raw = vol.to_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")

    def check(path):
        try:
            got = _load_vol_label(path)
        except DataError as exc:
            assert str(path) in str(exc)
            return
        _assert_same_masks(got, vol.masks)

    _in_tmp("1_label.mat", raw[:cut], check)


def _check_masks_or_error(path: Path) -> None:
    """Either a DataError naming the file or a list of non-empty 2-D numeric masks with values >= 0."""
    try:
        masks = _load_vol_label(path)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    assert masks
    for m in masks:
        assert isinstance(m, np.ndarray) and m.ndim == 2 and m.size and m.dtype.kind in "biuf", (m.dtype, m.shape)
        assert (m >= 0).all()


# MAT v5 tag values: data-type codes scipy has no dtype for (0, 8, 10, 11, 14, 15, 19, 20+), sizes, small elements
TAG_VALUES = [0, 1, 2, 6, 8, 9, 10, 11, 14, 15, 19, 20, 255, 0x10000 | 2, 0x50000 | 2, 0x7FFFFFFF, 0xFFFFFFFF]


@fuzz(600)
@given(vol=vol_labels(), data=st.data())
def test_vol_label_mutated_bytes(vol, data):
    """Bytes and whole 4-byte tag fields overwritten: a DataError or valid masks, never a crash or another error."""
    raw = bytearray(vol.to_bytes())
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        if data.draw(st.booleans(), label="tag field"):
            at = data.draw(st.integers(128, len(raw) - 4).map(lambda i: i - i % 4), label="offset")
            raw[at:at + 4] = data.draw(st.sampled_from(TAG_VALUES), label="value").to_bytes(4, "little")
        else:
            raw[data.draw(st.integers(0, len(raw) - 1), label="offset")] = data.draw(st.integers(0, 255))
    _in_tmp("1_label.mat", bytes(raw), _check_masks_or_error)


MASK = np.array([[0, 1, 1], [0, 0, 1]], np.uint8)
_MAT73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116) + bytes(8) + b"\x00\x02IM"


def _patched(raw: bytes, old: bytes, new: bytes) -> bytes:
    at = raw.index(old, 128)  # after the 128-byte file header
    return raw[:at] + new + raw[at + len(old):]


_MASK_MAT = _mat_bytes({"volLabel": _cells([MASK])})
_MASK_DATA_TAG = b"\x02\x00\x00\x00\x06\x00\x00\x00"  # miUINT8, 6 bytes: MASK's data
_DIMS_1x1 = b"\x05\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00"  # miINT32 [1, 1]: volLabel's size

# Files that are not an Avenue volLabel: each must be a DataError naming the file (raw bytes, or .mat variables
# saved with and without compression).
BAD_VOL_BYTES = {
    "empty file": b"",
    "not a mat file": b"this is not a MATLAB file\n",
    "v7.3 (HDF5)": _MAT73_HEADER + bytes(64),
    # regression: scipy's reader segfaulted on a data-type code without a dtype (reserved 10, or past its table)
    "data type code 10": _patched(_MASK_MAT, _MASK_DATA_TAG, b"\x0a" + _MASK_DATA_TAG[1:]),
    "data type code 255": _patched(_MASK_MAT, _MASK_DATA_TAG, b"\xff" + _MASK_DATA_TAG[1:]),
    # regression: 1 x 2**28 cells declared, one present: scipy allocated 2 GiB (8 bytes a cell) before failing
    "cell count beyond the file": _patched(_MASK_MAT, _DIMS_1x1, _DIMS_1x1[:12] + (1 << 28).to_bytes(4, "little")),
}
BAD_VOL_VARIABLES = {
    "wrong variable name": {"vollabel": _cells([MASK])},
    "other variables only": {"gt": _cells([MASK]), "labels": np.ones(3)},
    "numeric stack instead of cells": {"volLabel": np.stack([MASK, MASK])},
    "one numeric mask": {"volLabel": MASK},
    "string": {"volLabel": "mask"},
    "struct": {"volLabel": {"mask": MASK}},
    "no cells": {"volLabel": np.empty((1, 0), dtype=object)},
    "cell of strings": {"volLabel": _cells(["a", "b"])},
    "cell of 3-D arrays": {"volLabel": _cells([np.stack([MASK, MASK])])},
    "cell of empty arrays": {"volLabel": _cells([MASK, np.zeros((0, 0))])},
    "cell of structs": {"volLabel": _cells([{"mask": MASK}])},
    "nested cells": {"volLabel": _cells([_cells([MASK])])},
    "complex masks": {"volLabel": _cells([MASK * (1 + 1j)])},
    "negative values": {"volLabel": _cells([MASK.astype(np.int8) * -1])},
    "NaN values": {"volLabel": _cells([np.where(MASK, np.nan, 0.0)])},
}
BAD_VOL_CASES = [(name, None) for name in BAD_VOL_BYTES] + [
    (name, compress) for name in BAD_VOL_VARIABLES for compress in (False, True)]


@pytest.mark.parametrize("case,compress", BAD_VOL_CASES)
def test_vol_label_bad_files(case, compress):
    raw = BAD_VOL_BYTES[case] if compress is None else _mat_bytes(BAD_VOL_VARIABLES[case], compress)
    exc = _in_tmp("3_label.mat", raw, lambda p: _raises_data_error_naming(p, _load_vol_label))
    assert exc is not None, f"{case}: accepted"


cell_contents = hnp.arrays(
    dtype=st.sampled_from(["u1", "i1", "i2", "u2", "i4", "f4", "f8", "c16", "?", "U3"]).map(np.dtype),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)


@fuzz(250)
@given(value=st.lists(cell_contents, max_size=4).map(_cells) | cell_contents, compress=st.booleans())
@example(value=_cells([np.array(["abc"])]), compress=False)  # regression: a cell of strings was returned
@example(value=_cells([np.zeros((2, 3, 4))]), compress=False)  # regression: 3-D cell returned as a "mask"
@example(value=_cells([np.zeros((0, 0))]), compress=False)  # regression: empty cell returned
@example(value=_cells([np.array([[1.0, np.nan]])]), compress=True)  # regression: NaN (label 1, mask 0)
def test_vol_label_any_content(value, compress):
    """Whatever volLabel holds: exactly its masks when every cell is a non-empty 2-D numeric/logical mask with
    values >= 0, else a DataError naming the file. (What the file holds is read back with scipy directly.)"""
    from scipy.io import loadmat

    try:
        raw = _mat_bytes({"volLabel": value}, compress)
    except (TypeError, ValueError):
        reject()  # something savemat cannot write: not a parser input
    held = loadmat(io.BytesIO(raw))["volLabel"]
    cells = [np.asarray(c) for c in held.reshape(-1)] if held.dtype == object else []
    valid = bool(cells) and all(c.ndim == 2 and c.size and c.dtype.kind in "biuf" and (c >= 0).all() for c in cells)

    def check(path):
        if valid:
            _assert_same_masks(_load_vol_label(path), cells)
        else:
            assert _raises_data_error_naming(path, _load_vol_label) is not None, f"accepted {held!r}"

    _in_tmp("1_label.mat", raw, check)


# =============================================================================================== 3. label arrays

LABEL_DTYPES = ["u1", "i8", "i2", ">i4", "u8", "f2", "f4", "f8", ">f8", "?", "c8", "U1", "S1", "m8[s]", "M8[D]",
                "i1,i1"]
BAD_VALUES = [2, -1, np.nan, 0.5, np.inf, -np.inf, 255, 1e-9, 1 + 1e-12, -0.0]


@st.composite
def near_valid_labels(draw, n: int) -> np.ndarray:
    """0/1 labels of about the right length in some dtype and shape, sometimes with one bad value."""
    length = max(0, n + draw(st.sampled_from([0, 0, 0, 0, -1, 1, -n, n])))
    base = draw(hnp.arrays(np.uint8, length, elements=st.integers(0, 1)))
    dtype = np.dtype(draw(st.sampled_from(LABEL_DTYPES)))
    arr = base.astype(dtype) if dtype.names is None else np.array([(v, v) for v in base], dtype=dtype)
    if length and draw(st.booleans()):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                arr[draw(st.integers(0, length - 1))] = draw(st.sampled_from(BAD_VALUES))
            except (TypeError, ValueError, OverflowError):
                pass  # not representable in this dtype
    shapes = [(length,), (1, length), (length, 1), (1, 1, length)]
    if length % 2 == 0 and length:
        shapes.append((2, length // 2))
    return arr.reshape(draw(st.sampled_from(shapes)))


any_arrays = hnp.arrays(
    dtype=hnp.scalar_dtypes() | hnp.byte_string_dtypes() | hnp.unicode_string_dtypes()
    | hnp.array_dtypes(allow_subarrays=False, max_size=2),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Stored array in format 3.0" (non-ASCII field names)
        np.save(buf, arr)
    return buf.getvalue()


def _npz(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, labels=arr)
    return buf.getvalue()


@st.composite
def bad_label_bytes(draw, n: int) -> bytes:
    """Bytes that are not a plain numeric .npy: cut files, random bytes, npz archives, pickled objects."""
    good = _npy(np.zeros(n, np.uint8))
    return draw(st.one_of(
        st.integers(0, len(good) - 1).map(lambda k: good[:k]),
        st.binary(max_size=200),
        st.just(b"\x93NUMPY") | st.just(_npz(np.zeros(n, np.uint8))),
        st.just(_npy(np.array([0, 1] * n, dtype=object)[:n])),
        st.just(pickle.dumps(np.zeros(n, np.uint8))),
    ))


def label_contents(n: int):
    return near_valid_labels(n) | any_arrays | bad_label_bytes(n)


def _reference(content, n: int, *, shapes: str) -> tuple[np.ndarray | None, set[str]]:
    """What a label file holding `content` (an array, or raw bytes) must give for `n` frames: (labels, set())
    if it is acceptable, else (None, words of which the DataError must name at least one).

    `shapes` is "vector" (any shape with at most one axis longer than 1: (N,), (1, N), (N, 1) ...) or
    "1n" ((N,) or (1, N) only)."""
    if isinstance(content, bytes):
        try:
            content = np.load(io.BytesIO(content), allow_pickle=False)
        except Exception:
            return None, {"cannot read", "empty file"}
        if not isinstance(content, np.ndarray):  # an .npz archive
            return None, {"cannot read", "empty file"}
    arr, problems = content, set()
    if arr.dtype.kind not in "biuf":
        problems.add("dtype")
    if shapes == "vector":
        shape_ok = sum(d > 1 for d in arr.shape) <= 1
    else:
        shape_ok = arr.ndim == 1 or (arr.ndim == 2 and arr.shape[0] == 1)
    if not shape_ok:
        problems.add("shape")
    if arr.size != n:
        problems.add("labels but")
    if arr.dtype.kind in "biuf":
        with np.errstate(invalid="ignore"):
            if not ((arr == 0) | (arr == 1)).all():
                problems.add("0 or 1")
    if problems:
        return None, problems
    return arr.reshape(-1).astype(np.uint8), set()


def _content_bytes(content) -> bytes:
    return content if isinstance(content, bytes) else _npy(content)


@st.composite
def layout_label_cases(draw) -> tuple[int, object]:
    n = draw(st.integers(1, 12))
    return n, draw(label_contents(n))


@fuzz(700)
@given(case=layout_label_cases())
@example(case=(4, np.array([0, 1, 1, 0], np.uint8)))
@example(case=(3, np.array([[0, 1, 1]], np.int64)))
@example(case=(3, np.array([0.0, 1.0, np.nan])))
@example(case=(3, np.array([0, 1, 2])))
@example(case=(3, np.array([0, 1])))  # too short: no padding
@example(case=(3, np.array([0, 1, 0, 1])))  # too long: no truncation
@example(case=(3, np.array([0, 1, 1j])))  # regression: TypeError sorting complex values for the message
@example(case=(2, np.array([(0, 0), (1, 1)], dtype="i1,i1")))  # regression: structured dtype TypeError
@example(case=(2, np.array([0, 1], dtype="m8[s]")))  # regression: timedelta accepted as labels
@example(case=(4, np.array([[0, 1], [1, 0]], np.uint8)))  # regression: a 2x2 matrix accepted for 4 frames
@example(case=(2, np.array(["0", "1"])))
@example(case=(2, _npz(np.array([0, 1], np.uint8))))
@example(case=(2, b""))
def test_layout_labels(case):
    n, content = case
    want, words = _reference(content, n, shapes="vector")

    def check(path):
        if want is None:
            exc = _raises_data_error_naming(path, _load_labels, n)
            assert exc is not None, f"accepted {content!r} for {n} frames"
            assert any(w in str(exc) for w in words), f"{exc} names none of {words}"
        else:
            got = _load_labels(path, n)
            assert got.dtype == np.uint8 and got.shape == (n,)
            np.testing.assert_array_equal(got, want)

    _in_tmp("test00.npy", _content_bytes(content), check)


PRE_TEST = {"1": 2, "2": 1, "10": 3}  # numeric-aware order 1, 2, 10: the concatenated labels split 2 + 1 + 3
PRE_TOTAL = sum(PRE_TEST.values())


@pytest.fixture(scope="module")
def preprocessed_src(tmp_path_factory) -> Path:
    """A tiny preprocessed frame copy without its frame_labels_ped2.npy (each example writes its own)."""
    src = tmp_path_factory.mktemp("pre") / "ped2"
    frame = np.zeros((8, 8, 3), np.uint8)
    for split, videos in (("training", {"01": 2}), ("testing", PRE_TEST)):
        for video, n in videos.items():
            folder = src / split / "frames" / video
            folder.mkdir(parents=True)
            for i in range(n):
                assert cv2.imwrite(str(folder / f"{i:03d}.jpg"), frame)
    return src


@fuzz(300)
@given(content=label_contents(PRE_TOTAL))
@example(content=np.array([[0, 1, 1, 0, 0, 1]], np.int64))  # the official (1, N) form
@example(content=np.array([0, 1, 1, 0, 0, 1], bool))
@example(content=np.array([0, 1, 1, 0, 0, 1, 0]))  # one label too many: no truncation
@example(content=np.array([0.0, 1.0, 1.0, 0.0, 0.5, 1.0]))
@example(content=np.array([0, 1, 1, 0, 0, 1], dtype="m8[s]"))  # regression: timedelta accepted as labels
@example(content=np.array([(0, 0)] * PRE_TOTAL, dtype="i1,i1").reshape(1, -1))  # regression: TypeError
@example(content=_npz(np.zeros(PRE_TOTAL, np.uint8)))  # regression: AttributeError on an .npz archive
def test_preprocessed_frame_labels(preprocessed_src, content):
    label_file = preprocessed_src / "frame_labels_ped2.npy"
    label_file.write_bytes(_content_bytes(content))
    want, words = _reference(content, PRE_TOTAL, shapes="1n")
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "out"
        try:
            layout = import_dataset("preprocessed", preprocessed_src, dst, progress=False)
        except DataError as exc:
            assert want is None, f"rejected valid labels: {exc}"
            assert str(label_file) in str(exc), f"DataError does not name the file: {exc}"
            assert any(w in str(exc) for w in words), f"{exc} names none of {words}"
            assert not dst.exists()
            return
        assert want is not None, f"accepted {content!r}"
        got = np.concatenate([layout.video(v).labels for v in PRE_TEST])
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)
        shutil.rmtree(dst)
