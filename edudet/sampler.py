"""Balanced sampling: the fixed mix of positives and negatives a detector's loss is computed on.

An image has a few dozen positive anchors and hundreds of thousands of negatives; training on all of them
would drown the positives. Faster R-CNN (Ren et al., 2015) samples a mini-batch per image instead:
``batch_size_per_image`` examples of which at most ``positive_fraction`` are positive, topped up with
negatives. This is torchvision's ``BalancedPositiveNegativeSampler``, with an explicit random generator.
"""
from __future__ import annotations

import numpy as np

from ._validate import as_real_array, check_scalar

__all__ = ["BalancedPositiveNegativeSampler"]


class BalancedPositiveNegativeSampler:
    """Sample positives (labels >= 1) and negatives (labels == 0) of each image; -1 is never sampled.

    Per image: ``num_pos = min(#positives, int(batch_size_per_image * positive_fraction))``,
    ``num_neg = min(#negatives, batch_size_per_image - num_pos)``, each drawn uniformly without
    replacement. Returns two lists of (N,) uint8 masks (1 = sampled), positives and negatives, as
    torchvision does. `seed`: an int in [0, 2**63), a ``numpy.random.Generator`` or None (fresh entropy); the
    same seed gives the same samples (torchvision's draws come from torch's generator, so only the counts match
    it).
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float, seed=None):
        self.batch_size_per_image = check_scalar(batch_size_per_image, "batch_size_per_image", low=0, integer=True)
        self.positive_fraction = check_scalar(positive_fraction, "positive_fraction", low=0, high=1)
        if isinstance(seed, np.ndarray) and seed.ndim == 0:
            seed = seed.item()
        if isinstance(seed, np.random.Generator) or seed is None:
            self.rng = seed if seed is not None else np.random.default_rng()
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
            self.rng = np.random.default_rng(check_scalar(seed, "seed", low=0, integer=True))
        else:
            raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got {type(seed).__name__}")

    def __repr__(self) -> str:
        return (f"BalancedPositiveNegativeSampler(batch_size_per_image={self.batch_size_per_image}, "
                f"positive_fraction={self.positive_fraction:g})")

    def sample_counts(self, num_positives: int, num_negatives: int) -> tuple[int, int]:
        """``(num_pos, num_neg)`` this sampler draws from an image with that many positives and negatives."""
        num_positives = check_scalar(num_positives, "num_positives", low=0, integer=True)
        num_negatives = check_scalar(num_negatives, "num_negatives", low=0, integer=True)
        num_pos = min(num_positives, int(self.batch_size_per_image * self.positive_fraction))
        num_neg = min(num_negatives, self.batch_size_per_image - num_pos)
        return num_pos, num_neg

    def __call__(self, matched_idxs):
        """matched_idxs: a list of (N_i,) integer label arrays (one per image; a single array is taken as a
        list of one). Returns ``(pos_masks, neg_masks)``, two lists of (N_i,) uint8 arrays."""
        if isinstance(matched_idxs, np.ndarray) or hasattr(matched_idxs, "detach"):
            matched_idxs = [matched_idxs]
        if not isinstance(matched_idxs, (list, tuple)):
            raise TypeError(f"matched_idxs must be a list of (N,) label arrays, got {type(matched_idxs).__name__}")
        pos_masks, neg_masks = [], []
        for i, labels in enumerate(matched_idxs):
            labels = as_real_array(labels, f"matched_idxs[{i}]")
            if labels.ndim != 1:
                raise ValueError(f"matched_idxs[{i}] must have shape (N,), got {tuple(labels.shape)}")
            if np.issubdtype(labels.dtype, np.floating) and labels.size and not np.isfinite(labels).all():
                raise ValueError(f"matched_idxs[{i}] contains NaN or inf")
            positive = np.flatnonzero(labels >= 1)
            negative = np.flatnonzero(labels == 0)
            num_pos, num_neg = self.sample_counts(positive.size, negative.size)
            pos_mask = np.zeros(labels.shape[0], dtype=np.uint8)
            neg_mask = np.zeros(labels.shape[0], dtype=np.uint8)
            pos_mask[self.rng.choice(positive, size=num_pos, replace=False)] = 1
            neg_mask[self.rng.choice(negative, size=num_neg, replace=False)] = 1
            pos_masks.append(pos_mask)
            neg_masks.append(neg_mask)
        return pos_masks, neg_masks
