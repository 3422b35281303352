"""Data sets edudet owns: generated images with exact targets, NumPy only.

`shapes`: circles, squares and triangles on textured backgrounds (`ShapesDataset`, `make_image`, `CLASSES`).
"""
from .shapes import CLASSES, ShapesDataset, make_image

__all__ = ["CLASSES", "ShapesDataset", "make_image"]
