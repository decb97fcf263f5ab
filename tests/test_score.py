"""`vadlab score`: calibration stored by training, scoring new footage (real MP4s written with OpenCV, folders of
frames) with every registered method, stream and whole-video modes, bounded memory, bad input and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vadlab import engine
from vadlab.cli import main
from vadlab.data.clips import ClipSpec
from vadlab.data.layout import Video, list_images, load_layout, read_image
from vadlab.errors import DataError
from vadlab.eval.calibration import CALIBRATION, Calibration, cdf
from vadlab.registry import list_methods
from vadlab.score import ClipWindow, VideoSource, read_scores, score_video, stream_extras


def write_mp4(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Frames (grey (H, W) or RGB (H, W, 3) uint8) as an MP4 written by OpenCV (mp4v)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame[..., ::-1].copy())
    writer.release()
    return path


def video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    n = 0
    while capture.read()[0]:
        n += 1
    capture.release()
    return n


@pytest.fixture(scope="module")
def synthetic_mp4(tiny_synthetic, tmp_path_factory) -> Path:
    """The first synthetic test video, written to an MP4 with OpenCV."""
    video = load_layout(tiny_synthetic).testing[0]
    frames = [read_image(p, 3) for p in video.frames]
    return write_mp4(tmp_path_factory.mktemp("mp4") / "walkway.mp4", frames)


# --- calibration: the numbers -----------------------------------------------------------------------------------
def test_quantiles_are_the_training_cdf_and_fuse_with_the_methods_weights():
    rng = np.random.default_rng(0)
    train = {"a": rng.normal(size=200), "b": rng.normal(size=200) * 5, "c": rng.normal(size=200)}
    train["a"][3] = np.nan  # an unscored frame is left out of the reference
    cal = Calibration(train, {"a": 0.6, "b": 0.4, "c": 0.0})
    assert len(cal.signals["a"]) == 199 and np.all(np.diff(cal.signals["a"]) >= 0)
    above = {k: np.array([v[np.isfinite(v)].max() + 1.0]) for k, v in train.items()}
    below = {k: np.array([v[np.isfinite(v)].min() - 1.0]) for k, v in train.items()}
    top, bottom = cal.score(above), cal.score(below)
    assert top["q_a"][0] == 1.0 and top["calibrated"][0] == 1.0 and top["quantile"][0] == 1.0  # beyond every one
    assert bottom["q_a"][0] == 0.0 and bottom["calibrated"][0] == 0.0 and bottom["quantile"][0] == 0.0
    x = np.linspace(-10, 10, 401)
    q = cal.score({"a": x, "b": x, "c": x})
    assert np.all(np.diff(q["q_a"]) >= 0) and np.all(np.diff(q["calibrated"]) >= 0)  # monotone
    assert np.all((q["calibrated"] >= 0) & (q["calibrated"] <= 1))
    # the weighted mean of the fused signals' quantiles; a weight of 0 ("c") takes no part
    assert np.allclose(q["calibrated"], 0.6 * q["q_a"] + 0.4 * q["q_b"])
    assert np.isnan(cal.score({"a": np.array([np.nan]), "b": np.array([0.0]), "c": np.array([0.0])})["calibrated"][0])
    # the flag level: about 1 % of the training frames' own calibrated scores lie above the 0.99 quantile
    own = cal.score(train)["calibrated"]
    assert np.mean(own[np.isfinite(own)] > cal.level(0.99)) <= 0.011
    assert cdf(np.array([1.0, 2.0, 3.0]), [0.5, 2.0, 3.5]).tolist() == [0.0, 2 / 3, 1.0]


def test_calibration_file_round_trips_and_bad_files_are_named(tmp_path):
    cal = Calibration({"s": np.arange(10.0), "t": np.arange(10.0)[::-1]}, {"s": 1.0, "t": 0.0}, map_scale=2.5,
                      meta={"frames": 10})
    cal.save(tmp_path / CALIBRATION)
    back = Calibration.load(tmp_path / CALIBRATION)
    assert back.weights == cal.weights and back.map_scale == 2.5 and back.meta["frames"] == 10
    assert np.array_equal(back.frames["t"], cal.frames["t"]) and np.array_equal(back.fused, cal.fused)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        Calibration.load(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="no training distribution"):
        Calibration({"s": np.arange(3.0)}, {"s": 1.0, "u": 1.0})


# --- calibration: stored by training ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list_methods())
def test_training_stores_the_calibration_of_every_method(name, smoke_run, tiny_synthetic):
    run = smoke_run(name)
    cal = Calibration.load(run / CALIBRATION)
    method = engine.load_run(run, "cpu")
    assert cal.weights == method.fusion_weights()
    assert cal.meta["epochs_trained"] == method.epochs_trained
    assert cal.meta["scoring"] == engine.scoring_fingerprint(method)  # what `vadlab score` checks before reusing it
    layout = load_layout(tiny_synthetic)
    assert cal.meta["videos"] == [v.name for v in layout.training]  # normal training videos only
    n_frames = sum(len(v) for v in layout.training)
    assert all(len(v) == n_frames for v in cal.frames.values())
    # the stored distribution is that of the trained model on the training frames, scored as infer scores
    signals = engine.infer(method, layout, split="training", progress=False)
    signals.pop("_map", None)
    assert set(signals) == set(cal.frames)
    for key, per_video in signals.items():
        expected = np.concatenate([per_video[v.name] for v in layout.training])
        assert np.allclose(expected, cal.frames[key], equal_nan=True, rtol=1e-5, atol=1e-6), key


# --- scoring new footage: every registered method --------------------------------------------------------------
@pytest.mark.parametrize("name", list_methods())
def test_score_an_mp4_whole_and_streamed_with_every_method(name, smoke_run, synthetic_mp4, tmp_path):
    run = smoke_run(name)
    n = video_frames(synthetic_mp4)
    whole = score_video(run, synthetic_mp4, tmp_path / "whole", device="cpu", progress=False)
    streamed = score_video(run, synthetic_mp4, tmp_path / "stream", stream=True, device="cpu", progress=False)
    for summary, folder in ((whole, tmp_path / "whole"), (streamed, tmp_path / "stream")):
        assert summary["frames"] == n and summary["frames_scored"] > 0
        assert {"scores.csv", "curve.png", "overlay.mp4", "summary.json"} <= {p.name for p in folder.iterdir()}
        assert video_frames(folder / "overlay.mp4") == n  # one overlay frame per video frame
        scores = read_scores(folder / "scores.csv")
        assert scores["frame"].tolist() == list(range(n))  # one row per frame
        scored = np.isfinite(scores["calibrated"])
        assert scored.sum() == summary["frames_scored"]
        assert np.all((scores["calibrated"][scored] >= 0) & (scores["calibrated"][scored] <= 1))
        assert np.array_equal(scores["flag"][scored] == 1, scores["calibrated"][scored] > summary["level"])
    a, b = read_scores(tmp_path / "whole" / "scores.csv"), read_scores(tmp_path / "stream" / "scores.csv")
    assert "score_minmax" in a and "score_minmax" not in b  # min-max needs the whole video
    for column in b:  # stream and whole-video give the same scores
        assert np.allclose(a[column], b[column], equal_nan=True, rtol=1e-4, atol=1e-5), column


@pytest.mark.parametrize("name", list_methods())
def test_a_folder_of_frames_is_prepared_and_scored_as_the_run_scores_its_test_videos(name, smoke_run, tiny_synthetic,
                                                                                     tmp_path):
    run = smoke_run(name)
    layout = load_layout(tiny_synthetic)
    video = layout.testing[0]
    method = engine.load_run(run, "cpu")
    assert set(stream_extras(method)) == set(method.extra_inputs([video], "testing"))  # the extras score computes
    expected = engine.infer(method, layout, progress=False)  # the evaluation pipeline: cached frames, flow, clips
    score_video(run, video.frames[0].parent, tmp_path / "out", stream=True, write_video=False, device="cpu",
                progress=False)
    got = read_scores(tmp_path / "out" / "scores.csv")
    for key, per_video in expected.items():
        if key != "_map":
            assert np.allclose(got[key], per_video[video.name], equal_nan=True, rtol=1e-4, atol=1e-5), key


# --- bounded memory ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [ClipSpec(4, True), ClipSpec(1, False), ClipSpec(16, False, 8), ClipSpec(2, False, 0)])
def test_the_clip_window_holds_at_most_one_clip_of_frames(spec):
    window = ClipWindow(spec, (8, 12), 1, flow_method="dis" if spec.frames_in == 2 else None)
    rng = np.random.default_rng(0)
    scored = []
    n = 60
    for _ in range(n):
        frame = rng.integers(0, 256, (16, 24), dtype=np.uint8)
        item = window.push(frame, frame)
        assert len(window.frames) <= spec.frames_in + spec.predict and len(window.flows) <= window.length + 1
        if item is not None:
            assert item["input"].shape == (spec.frames_in, 1, 8, 12)
            scored.append(item["index"])
    assert scored == list(spec.scored_range(n))  # every frame ClipDataset scores, in order, once
    assert window.held == spec.frames_in + spec.predict


def test_a_long_stream_keeps_its_buffers_bounded(smoke_run, tiny_synthetic, tmp_path):
    video = load_layout(tiny_synthetic).testing[0]
    frames = [read_image(p, 1) for p in video.frames] * 6  # a 6 times longer video
    long_mp4 = write_mp4(tmp_path / "long.mp4", frames)
    summary = score_video(smoke_run("mnad_pred"), long_mp4, tmp_path / "out", stream=True, device="cpu",
                          progress=False)
    assert summary["frames"] == len(frames)
    assert summary["frames_buffered"] == {"window": 5, "pending": 1}  # MNAD-P: 4 inputs + the target; none wait


def test_a_calibration_made_with_other_scoring_constants_is_made_again(smoke_run, tmp_path):
    """The calibration's raw scores depend on the config and on `fit_scoring`'s constants (MAAM-Net's branch scales
    under psi_rule="balanced"): one made with others is not reused, whatever its epochs and weights say."""
    from vadlab.score import ensure_calibration

    run = tmp_path / "maam"
    shutil.copytree(smoke_run("maam"), run)
    method = engine.load_run(run, "cpu")
    assert ensure_calibration(run, method, progress=False).meta == Calibration.load(run / CALIBRATION).meta  # reused
    fit = json.loads((run / engine.SCORING_FIT).read_text())
    fit["app"]["frame_max_std"] *= 2.0  # as if the scales had been fitted by another model or code
    (run / engine.SCORING_FIT).write_text(json.dumps(fit))
    method = engine.load_run(run, "cpu")
    again = ensure_calibration(run, method, progress=False)
    assert again.meta["scoring"]["scoring_fit"]["app"]["frame_max_std"] == fit["app"]["frame_max_std"]
    assert Calibration.load(run / CALIBRATION).meta["scoring"] == engine.scoring_fingerprint(method)


# --- runs made before calibration was stored --------------------------------------------------------------------
def test_a_run_without_calibration_gets_one_from_its_training_data(smoke_run, tiny_synthetic, synthetic_mp4,
                                                                   tmp_path):
    run = tmp_path / "old"
    shutil.copytree(smoke_run("mnad_recon"), run)
    stored = Calibration.load(run / CALIBRATION)
    (run / CALIBRATION).unlink()
    score_video(run, synthetic_mp4, tmp_path / "out", write_video=False, device="cpu", progress=False)
    again = Calibration.load(run / CALIBRATION)
    for key in stored.frames:
        assert np.allclose(stored.frames[key], again.frames[key], equal_nan=True)
    # the data has moved: a named error that says what to pass
    (run / CALIBRATION).unlink()
    info = (run / "run.json").read_text().replace(str(tiny_synthetic), str(tmp_path / "gone"))
    (run / "run.json").write_text(info)
    with pytest.raises(DataError, match="--data"):
        score_video(run, synthetic_mp4, tmp_path / "out2", device="cpu", progress=False)
    score_video(run, synthetic_mp4, tmp_path / "out2", data=tiny_synthetic, write_video=False, device="cpu",
                progress=False)
    assert (run / CALIBRATION).exists()


# --- bad input and the CLI --------------------------------------------------------------------------------------
def test_bad_input_is_a_named_error_and_exit_2(smoke_run, synthetic_mp4, tmp_path, capsys):
    run = smoke_run("mnad_pred")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    empty = tmp_path / "empty"
    empty.mkdir()
    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    short = tmp_path / "short"
    short.mkdir()
    for i, p in enumerate(list_images(Path(load_layout(smoke_run_data(run)).testing[0].frames[0]).parent)[:3]):
        shutil.copy(p, short / f"{i:03d}.png")
    cases = [([str(run), str(fake)], str(fake)), ([str(run), str(empty)], str(empty)),
             ([str(run), str(tmp_path / "missing.mp4")], "missing.mp4"),
             ([str(no_ckpt), str(synthetic_mp4)], str(no_ckpt)),
             ([str(run), str(short)], "need at least 5"),
             ([str(run), str(synthetic_mp4), "--threshold", "1.5"], "--threshold")]
    for args, named in cases:
        out = tmp_path / "out"
        assert main(["score", *args, "--out", str(out), "--quiet"]) == 2, args
        err = capsys.readouterr().err
        assert named in err, (args, err)
        assert not (out / "scores.csv").exists() and not (out / "overlay.mp4").exists()  # nothing half written
    assert main(["score", str(run), str(synthetic_mp4), "--out", str(tmp_path / "good"), "--quiet"]) == 0
    assert "frames/s" in capsys.readouterr().out
    # the installed command, as a user runs it
    result = subprocess.run([sys.executable, "-m", "vadlab.cli", "score", str(run), str(fake)], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "OpenCV cannot read it" in result.stderr


def smoke_run_data(run: Path) -> Path:
    return Path(engine.run_info(run)["data"])


def test_video_source_reads_a_folder_as_the_pipeline_does(tiny_synthetic):
    video: Video = load_layout(tiny_synthetic).testing[0]
    source = VideoSource(video.frames[0].parent, 3)
    images = [image for image, _ in source]
    assert source.kind == "folder" and len(images) == len(video)
    assert np.array_equal(images[0], read_image(video.frames[0], 3))


def test_ctrl_c_stops_a_stream_and_keeps_what_was_scored(smoke_run, tiny_synthetic, tmp_path):
    import os
    import signal
    import time

    video = load_layout(tiny_synthetic).testing[0]
    frames = [read_image(p, 1) for p in video.frames] * 40  # about a thousand frames: long enough to stop midway
    long_mp4 = write_mp4(tmp_path / "long.mp4", frames)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "vadlab.cli", "score", str(smoke_run("mnad_pred")), str(long_mp4),
                             "--out", str(out), "--stream", "--quiet"], stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline, seen = time.time() + 120, 0
    while time.time() < deadline and proc.poll() is None:  # wait until rows are being written into the temp CSV
        temp = list(out.glob(".scores.*.tmp.csv")) if out.is_dir() else []
        if temp and temp[0].exists():
            seen = temp[0].read_text().count("\n") - 1  # complete rows seen so far, the header left out
            if seen >= 20:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the stream ended before it could be stopped"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped by signal 2" in err
    summary = json.loads((out / "summary.json").read_text())
    # the stop comes after the rows already seen (never before) and well before the end of the video
    assert summary["stopped"] and 20 <= seen <= summary["frames"] < len(frames)
    assert len(read_scores(out / "scores.csv")["frame"]) == summary["frames"]  # complete rows, nothing cut
    assert video_frames(out / "overlay.mp4") == summary["frames"]  # a playable video of the frames scored


def test_calibration_takes_evenly_spaced_whole_videos_beyond_its_frame_budget():
    videos = [Video(f"v{i}", "training", tuple(Path(f"{j}.png") for j in range(100))) for i in range(40)]
    assert engine.calibration_videos(videos[:5], max_frames=3000) == videos[:5]  # all of a small set
    chosen = engine.calibration_videos(videos, max_frames=1000)
    assert [v.name for v in chosen] == [f"v{i}" for i in (0, 4, 9, 13, 17, 22, 26, 30, 35, 39)]  # 10 of 40, spread
    assert len(engine.calibration_videos(videos, max_frames=10)) == 1  # at least one video


def test_flow_from_files_cannot_be_computed_for_new_footage():
    from vadlab.errors import ConfigError
    from vadlab.registry import create_method

    with pytest.raises(ConfigError, match="flow_method='files'"):
        stream_extras(create_method("maam", "smoke", flow_method="files"))
    assert stream_extras(create_method("maam", "smoke", branches="appearance")) == {}


# --- batched scoring --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", list_methods())
def test_batched_scoring_gives_the_scores_of_one_clip_at_a_time(method, smoke_run, tiny_synthetic, monkeypatch):
    """`engine.infer` scores clips in batches (`scoring_batch_size`); one clip per batch gives the same scores up
    to float rounding (DREAM-ConvLSTM's scoring path shares the frames of consecutive clips)."""
    trained = engine.load_run(smoke_run(method), "cpu")
    batched = engine.infer(trained, tiny_synthetic, progress=False)
    monkeypatch.setattr(engine, "scoring_batch_size", lambda _: 1)
    single = engine.infer(trained, tiny_synthetic, progress=False)
    assert batched.keys() == single.keys()
    for signal, videos in batched.items():
        for video, values in videos.items():
            scored = np.isfinite(values)
            assert scored.any() and np.array_equal(scored, np.isfinite(single[signal][video]))
            np.testing.assert_allclose(values[scored], single[signal][video][scored], rtol=1e-4, atol=1e-5,
                                       err_msg=f"{method} {signal} {video}")
