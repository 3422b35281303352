"""The two-stage detector's skeleton: transform -> backbone -> RPN -> RoI heads -> boxes in the original image.

`GeneralizedRCNN` holds the four parts and runs them in order, recording each stage when traced; Faster
R-CNN fills it with a ResNet-50-FPN backbone, an RPN and a box head, and Mask R-CNN adds a mask head to the
RoI heads without changing this file. The one-stage detectors (`one_stage.OneStageDetector`) keep the
transform, backbone and weight handling and replace `detect` (RPN + RoI heads) by a dense head.
Weights use torchvision's ``state_dict`` names throughout.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .trace import Trace, current_trace
from .weights import StateModule, check_state_dict, check_state_values, normalize_state_dict, save_npz

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
        bn_eps = getattr(getattr(backbone, "body", None), "bn_eps", 1e-5)
        if bn_eps != 1e-5:  # recorded only when it differs from torchvision's default
            self.config["bn_eps"] = bn_eps
        self._state: dict[str, np.ndarray] = {}

    def children(self):
        return {"backbone": self.backbone, "rpn": self.rpn, "roi_heads": self.roi_heads}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"

    # two-stage heads pool RoIs from FPN levels looked up by name ("0" .. "pool"); dense heads take a list
    features_by_name = True

    def __call__(self, images, trace: bool | Trace = False):
        recorder = Trace() if trace is True else trace if isinstance(trace, Trace) else current_trace()
        batch, image_sizes, original_sizes, features = self._transform_and_backbone(images, recorder)
        detections = self.detect(batch, image_sizes, features, recorder)
        with recorder.stage("transform.postprocess") as stage:
            detections = self.transform.postprocess(detections, image_sizes, original_sizes)
            stage.add("boxes", [d["boxes"] for d in detections])
        return (detections, recorder) if trace is True else detections

    def _transform_and_backbone(self, images, recorder: Trace):
        """The stages every detector starts with: ``(batch, image_sizes, original_sizes, features)``."""
        with recorder.stage("transform") as stage:
            batch, image_sizes, original_sizes = self.transform(images)
            stage.add("images", batch)
        with recorder.stage("backbone.body") as stage:
            body_features = self.backbone.body(batch)
            stage.add("C", body_features)
        with recorder.stage("backbone.fpn") as stage:
            features = self.backbone.fpn(body_features)
            if not self.features_by_name:
                features = list(features.values())
            stage.add("P", features)
        return batch, image_sizes, original_sizes, features

    def detect(self, batch: np.ndarray, image_sizes, features, recorder: Trace) -> list[dict]:
        """The detector's own stages, from FPN features to detections in the resized images' pixels."""
        proposals, _ = self.rpn(batch.shape[-2:], image_sizes, list(features.values()), trace=recorder)
        return self.roi_heads(features, proposals, image_sizes, trace=recorder)

    # weights -------------------------------------------------------------------------------------------
    # the classifier weight whose rows count the classes: (torchvision name, ndim); set by each detector
    classifier_weight: tuple[str, int] | None = None

    def classifier_rows_per_class(self) -> int:
        """Rows of `classifier_weight` per class (a dense head has one per anchor of a location)."""
        return 1

    def _weights_hint(self, state: Mapping[str, np.ndarray]) -> str | None:
        """A sentence explaining the most likely cause of a mismatch: weights for another number of classes."""
        if self.classifier_weight is None:
            return None
        name, ndim = self.classifier_weight
        weight, rows = state.get(name), self.classifier_rows_per_class()
        if weight is not None and weight.ndim == ndim and weight.shape[0] != rows * self.num_classes:
            found = weight.shape[0] // rows
            return (f"the weights are for num_classes={found} but the model was built with "
                    f"num_classes={self.num_classes}; pass num_classes={found}")
        return None

    def load_state_dict(self, state_dict: Mapping, strict: bool = True) -> "GeneralizedRCNN":
        """Load torchvision-named weights (``model.state_dict()`` of the torch model, tensors or arrays).

        BatchNorm2d keys (with ``num_batches_tracked``) and FrozenBatchNorm2d keys are both accepted, and
        the pre-0.13 torchvision names of the FPN and RPN convs are renamed. With ``strict=True`` (the
        default) any missing, unexpected or mis-shaped entry raises a ValueError listing all of them;
        ``strict=False`` ignores unexpected entries and keeps the already loaded value of missing ones
        (a model that has none yet still needs every entry). A NaN or inf weight, one beyond float32's
        range or a negative ``running_var`` is refused by name (`check_state_values`), before anything loads.
        Batch norms are folded into their convs here, once.
        """
        expected = self.state_shapes()
        state = normalize_state_dict(state_dict, expected)
        check_state_dict(state, expected, strict=strict, hint=self._weights_hint(state))
        bn_eps = getattr(getattr(self.backbone, "body", None), "bn_eps", 1e-5)
        check_state_values({k: v for k, v in state.items() if k in expected}, bn_eps)
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

    def save(self, path, half: bool = False):
        """Write the weights and the constructor arguments to an ``.npz`` (read back by `edudet.models.load`).

        ``half=True`` stores the conv and linear weights (every array of 2 or more dimensions) as float16,
        halving the file; vectors (biases, batch-norm statistics) stay float32, and loading gives float32.
        """
        with np.errstate(over="ignore"):  # overflow is reported below, by name
            state = {k: v.astype(np.float16) if half and v.ndim >= 2 else v for k, v in self._state.items()}
        too_large = [k for k, v in state.items() if not np.isfinite(v).all()]
        if too_large:
            raise ValueError(f"half=True: {', '.join(too_large[:5])} exceed float16's range (65504); save in float32")
        return save_npz(path, state, {"architecture": self.architecture, **self.config})

    architecture = "generalized_rcnn"
