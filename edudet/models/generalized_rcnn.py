"""The two-stage detector's skeleton: transform -> backbone -> RPN -> RoI heads -> boxes in the original image.

`GeneralizedRCNN` holds the four parts and runs them in order, recording each stage when traced; Faster
R-CNN fills it with a ResNet-50-FPN backbone, an RPN and a box head, and Mask R-CNN adds a mask head to the
RoI heads without changing this file. Weights use torchvision's ``state_dict`` names throughout.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .trace import Trace, current_trace
from .weights import StateModule, check_state_dict, normalize_state_dict, save_npz

__all__ = ["GeneralizedRCNN"]


class GeneralizedRCNN(StateModule):
    """``model(images)`` -> one ``{"boxes": (K, 4) float32, "labels": (K,) int64, "scores": (K,) float32}`` per image.

    images: a list of ``(3, H, W)`` float arrays in [0, 1] or ``(H, W, 3)`` uint8 arrays (sizes may differ).
    Boxes are ``(x1, y1, x2, y2)`` in each original image's pixels, sorted by decreasing score.
    ``model(images, trace=True)`` returns ``(detections, trace)`` with each stage's output shapes and time.
    """

    def __init__(self, backbone, rpn, roi_heads, transform, config: Mapping | None = None):
        self.backbone, self.rpn, self.roi_heads, self.transform = backbone, rpn, roi_heads, transform
        self.config = dict(config or {})
        self._state: dict[str, np.ndarray] = {}

    def children(self):
        return {"backbone": self.backbone, "rpn": self.rpn, "roi_heads": self.roi_heads}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"

    def __call__(self, images, trace: bool | Trace = False):
        recorder = Trace() if trace is True else trace if isinstance(trace, Trace) else current_trace()
        with recorder.stage("transform") as stage:
            batch, image_sizes, original_sizes = self.transform(images)
            stage.add("images", batch)
        with recorder.stage("backbone.body") as stage:
            body_features = self.backbone.body(batch)
            stage.add("C", body_features)
        with recorder.stage("backbone.fpn") as stage:
            features = self.backbone.fpn(body_features)
            stage.add("P", features)
        del body_features
        proposals, _ = self.rpn(batch.shape[-2:], image_sizes, list(features.values()), trace=recorder)
        detections = self.roi_heads(features, proposals, image_sizes, trace=recorder)
        with recorder.stage("transform.postprocess") as stage:
            detections = self.transform.postprocess(detections, image_sizes, original_sizes)
            stage.add("boxes", [d["boxes"] for d in detections])
        return (detections, recorder) if trace is True else detections

    # weights -------------------------------------------------------------------------------------------
    def _weights_hint(self, state: Mapping[str, np.ndarray]) -> str | None:
        """A sentence explaining the most likely cause of a mismatch (overridden by detectors)."""
        return None

    def load_state_dict(self, state_dict: Mapping, strict: bool = True) -> "GeneralizedRCNN":
        """Load torchvision-named weights (``model.state_dict()`` of the torch model, tensors or arrays).

        BatchNorm2d keys (with ``num_batches_tracked``) and FrozenBatchNorm2d keys are both accepted, and
        the pre-0.13 torchvision names of the FPN and RPN convs are renamed. With ``strict=True`` (the
        default) any missing, unexpected or mis-shaped entry raises a ValueError listing all of them;
        ``strict=False`` ignores unexpected entries and keeps the already loaded value of missing ones
        (a model that has none yet still needs every entry).
        Batch norms are folded into their convs here, once.
        """
        expected = self.state_shapes()
        state = normalize_state_dict(state_dict, expected)
        check_state_dict(state, expected, strict=strict, hint=self._weights_hint(state))
        merged = dict(self._state)
        merged.update({k: np.asarray(v, np.float32) for k, v in state.items() if k in expected})
        missing = [k for k in expected if k not in merged]
        if missing:
            raise ValueError(f"the weights do not fit this model: {len(missing)} missing: {', '.join(missing[:20])}")
        self._state = merged
        self.load_state(merged)
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """The loaded weights under torchvision's names (batch norms unfolded, as given), float32."""
        return dict(self._state)

    def save(self, path):
        """Write the weights and the constructor arguments to an ``.npz`` (read back by `edudet.models.load`)."""
        return save_npz(path, self._state, {"architecture": self.architecture, **self.config})

    architecture = "generalized_rcnn"
