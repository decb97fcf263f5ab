"""Datasets: the common layout, clips, the synthetic generator, importers, optical flow."""

from vadlab.data.layout import Layout, Video, load_layout, LayoutWriter

__all__ = ["Layout", "Video", "load_layout", "LayoutWriter"]
