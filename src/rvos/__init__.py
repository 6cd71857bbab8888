"""rvos: referring video object segmentation from cheap annotation."""

__version__ = "0.1.0"
