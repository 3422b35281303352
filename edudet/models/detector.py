"""What every detector shares: transform -> backbone -> its own `detect` -> boxes in the original images.

`Detector` owns the transform (resize, normalise, pad), the backbone (which declares its output names and
strides), the weights (torchvision's ``state_dict`` names, loaded with strict checks, saved to ``.npz``), the
trace and the call. Its two kinds differ only in `detect`, from the FPN levels to detections:

- `TwoStageDetector` (Faster R-CNN, Mask R-CNN): an RPN proposes boxes, RoI heads pool and classify them;
- `one_stage.OneStageDetector` (RetinaNet, FCOS): a dense head predicts at every location of every level.

The backbone's declared strides are checked against the maps of every forward pass (`edudet.strides`), and
anchor sizes against them when a detector is built. A detector's name (``fasterrcnn_resnet50_fpn``) is
its `kind` joined to its backbone's name: the one place `architecture` comes from.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..strides import level_strides
from .trace import Trace, current_trace
from .weights import StateModule, check_state_dict, check_state_values, normalize_state_dict, save_npz

__all__ = ["Detector", "TwoStageDetector"]


class Detector(StateModule):
    """``model(images)`` -> one ``{"boxes": (K, 4) float32, "labels": (K,) int64, "scores": (K,) float32}`` per image.

    images: a list of ``(3, H, W)`` float arrays in [0, 1] or ``(H, W, 3)`` uint8 arrays (sizes may differ).
    Boxes are ``(x1, y1, x2, y2)`` in each original image's pixels, sorted by decreasing score.
    ``model(images, trace=True)`` returns ``(detections, trace)`` with each stage's output shapes and time.
    Several images per call are padded to one batch (as torchvision); after the backbone every stage runs on
    the whole batch at once (one proposal filter, one pooling call, one NMS per stage, whose categories keep
    the images apart), and each image gets the detections it gets alone, up to float32 rounding of the
    batched matrix products (tests/test_models_batch.py).

    A subclass sets `kind` and implements `detect` and `num_classes_in`; its parts are its `children`.
    The backbone has ``body`` and ``fpn`` (run as two traced stages), ``out_channels``, ``out_names``,
    ``strides`` and ``name``.
    """

    kind = "detector"  # the first half of `architecture`, e.g. "fasterrcnn"

    def __init__(self, backbone, transform, config: Mapping | None = None):
        self.backbone, self.transform = backbone, transform
        self.config = dict(config or {})
        bn_eps = self.bn_eps
        if bn_eps != 1e-5:  # recorded only when it differs from torchvision's default
            self.config["bn_eps"] = bn_eps
        self._state: dict[str, np.ndarray] = {}

    @property
    def architecture(self) -> str:
        """The name `edudet.models.load` builds this detector by, e.g. ``"maskrcnn_resnet18_fpn"``."""
        return f"{self.kind}_{self.backbone.name}"

    @property
    def bn_eps(self) -> float:
        return getattr(getattr(self.backbone, "body", None), "bn_eps", 1e-5)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"

    # the forward pass --------------------------------------------------------------------------------------
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
            # the maps must be what the backbone declares: a wrong stride would misplace every box
            level_strides(batch.shape[-2:], [f.shape for f in features.values()], self.backbone.strides)
            stage.add("P", features)  # labelled by the backbone's names: P[0] .. P[pool], or P[p6], P[p7]
        detections = self.detect(batch, image_sizes, features, recorder)
        with recorder.stage("transform.postprocess") as stage:
            detections = self.transform.postprocess(detections, image_sizes, original_sizes)
            stage.add("boxes", [d["boxes"] for d in detections])
        return (detections, recorder) if trace is True else detections

    def detect(self, batch: np.ndarray, image_sizes, features, recorder: Trace) -> list[dict]:
        """The detector's own stages: FPN levels (an OrderedDict name -> (N, C, h, w), the backbone's
        `out_names` in order) -> per image detections in the resized images' pixels."""
        raise NotImplementedError

    # weights -------------------------------------------------------------------------------------------
    @classmethod
    def num_classes_in(cls, state: Mapping[str, np.ndarray]) -> int | None:
        """The number of classes torchvision-named weights `state` were trained for (None: no classifier)."""
        raise NotImplementedError

    def _weights_hint(self, state: Mapping[str, np.ndarray]) -> str | None:
        """A sentence explaining the most likely cause of a mismatch: weights for another number of classes."""
        found = self.num_classes_in(state)
        if found is not None and found != self.num_classes:
            return (f"the weights are for num_classes={found} but the model was built with "
                    f"num_classes={self.num_classes}; pass num_classes={found}")
        return None

    def load_state_dict(self, state_dict: Mapping, strict: bool = True) -> "Detector":
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
        check_state_values({k: v for k, v in state.items() if k in expected}, self.bn_eps)
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


class TwoStageDetector(Detector):
    """A `Detector` whose `detect` is an RPN (proposals) followed by RoI heads (boxes, labels, scores[, masks]).

    The RoI poolers look the FPN levels up by name (``"0"`` .. ``"3"``; ``"pool"`` only feeds the RPN).
    """

    classifier_weight = "roi_heads.box_predictor.cls_score.weight"  # (num_classes, D): one row per class

    def __init__(self, backbone, rpn, roi_heads, transform, config: Mapping | None = None):
        super().__init__(backbone, transform, config)
        self.rpn, self.roi_heads = rpn, roi_heads

    def children(self):
        return {"backbone": self.backbone, "rpn": self.rpn, "roi_heads": self.roi_heads}

    def detect(self, batch, image_sizes, features, recorder):
        proposals, _ = self.rpn(batch.shape[-2:], image_sizes, list(features.values()), trace=recorder)
        return self.roi_heads(features, proposals, image_sizes, trace=recorder)

    @classmethod
    def num_classes_in(cls, state):
        weight = state.get(cls.classifier_weight)
        return None if weight is None or np.ndim(weight) != 2 else int(np.shape(weight)[0])
