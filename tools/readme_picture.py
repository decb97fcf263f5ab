"""The README's picture: a test video scored by `vadlab score`, one overlay frame beside its score curve.

    python tools/readme_picture.py RUN ROOT VIDEO [--frame N] [--out docs/img/score_overlay.png]

RUN is a trained run folder, ROOT a dataset in the common layout and VIDEO one of its test videos. The frame is
`--frame`, or else the frame with the highest calibrated score. The left panel is that frame of `overlay.mp4`, with
the method's anomaly map over it. The right panel is the video's per-video min-max score, the protocol's, with the
frame-difference baseline and the ground truth shaded. Everything is drawn by vadlab's own functions
(`vadlab.score.score_video`, `vadlab.viz.plot_score_curve`). Run by hand; nothing here is a test.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a trained run folder")
    parser.add_argument("root", help="the dataset (common layout) holding VIDEO")
    parser.add_argument("video", help="a test video's name, e.g. Test002")
    parser.add_argument("--frame", type=int, default=None, help="the frame to show (default: the highest score)")
    parser.add_argument("--out", default="docs/img/score_overlay.png", help="the PNG to write")
    args = parser.parse_args(argv)

    from vadlab import viz
    from vadlab.data.layout import load_layout
    from vadlab.eval.baselines import frame_difference_scores
    from vadlab.score import read_scores, score_video

    layout = load_layout(args.root)
    video = next((v for v in layout.testing if v.name == args.video), None)
    if video is None:
        parser.error(f"{args.root}: no test video {args.video!r}")
    labels = video.labels
    folder = video.frames[0].parent  # the test video as a folder of frames, as a user would give it
    with tempfile.TemporaryDirectory() as tmp:
        summary = score_video(args.run, folder, Path(tmp) / "score", data=args.root)
        scores = read_scores(Path(tmp) / "score" / "scores.csv")
        frame = args.frame if args.frame is not None else int(np.nanargmax(scores["calibrated"]))
        capture = cv2.VideoCapture(str(Path(tmp) / "score" / "overlay.mp4"))
        capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, image = capture.read()
        capture.release()
    if not ok:
        raise SystemExit(f"overlay.mp4 has no frame {frame}")
    video_shape = image.shape[:2]
    width = video_shape[1]
    shown = cv2.cvtColor(image[:, : width - 320], cv2.COLOR_BGR2RGB)  # the frame; the 320-pixel panel is cut off

    baseline = frame_difference_scores([video], summary["image_size"])[video.name]  # at the method's size
    baseline = (baseline - np.nanmin(baseline)) / (np.nanmax(baseline) - np.nanmin(baseline))

    fig = viz.plt.figure(figsize=(11, 2.9))
    grid = fig.add_gridspec(1, 2, width_ratios=[shown.shape[1] / video_shape[0] * 2.9, 6.4])
    ax_frame, ax_curve = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    ax_frame.imshow(shown)
    ax_frame.set_axis_off()
    ax_frame.set_title(f"{video.name}, frame {frame}: the anomaly map over the frame", fontsize=9)
    viz.plot_score_curve(scores["score_minmax"], labels, baseline=baseline, method=summary["method"],
                         title=f"{summary['method']} on {video.name}", ax=ax_curve)
    ax_curve.axvline(frame, color="0.2", lw=0.8, ls=":")
    fig.tight_layout()
    viz.save(fig, args.out, dpi=110)
    print(f"wrote {args.out} (frame {frame})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
