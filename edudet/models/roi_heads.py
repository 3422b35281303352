"""The box head of Faster R-CNN (Ren et al., 2015): from proposals to labelled, scored detections.

Each proposal is pooled from its FPN level to a ``256 x 7 x 7`` grid (MultiScaleRoIAlign, sampling ratio
2), flattened, passed through two 1024-wide fully connected layers with ReLU (``TwoMLPHead``), then a
predictor gives class logits and per-class box deltas (``FastRCNNPredictor``). Post-processing
(torchvision's ``RoIHeads.postprocess_detections``): softmax over classes, decode each class's deltas
against the proposal (weights (10, 10, 5, 5)), clip to the image, drop the background class, keep
``score > score_thresh``, drop boxes with a side below 1e-2 px, NMS at `nms_thresh` separately per class,
keep the `detections_per_img` best. Mask R-CNN then runs its mask branch on those detections
(`mask_rcnn.MaskBranch`, set as ``mask_branch``), adding ``masks`` to each result.

The v2 models (``fasterrcnn_resnet50_fpn_v2``, ``maskrcnn_resnet50_fpn_v2``) replace ``TwoMLPHead`` by
``FastRCNNConvFCHead``: four 3x3 convs of 256 with batch norm and ReLU on the 7 x 7 grid, then one
1024-wide fully connected layer with ReLU; the rest is the same.
"""
from __future__ import annotations

import numpy as np

from .._validate import check_scalar
from ..box_coder import BoxCoder
from ..ops import batched_nms, remove_small_boxes
from ..poolers import MultiScaleRoIAlign
from .layers import Conv2d, FrozenBatchNorm2d, Linear, relu_, softmax
from .rpn import clip_per_image
from .trace import NULL_TRACE
from .weights import StateModule

__all__ = ["TwoMLPHead", "FastRCNNConvFCHead", "FastRCNNPredictor", "RoIHeads", "multiscale_roi_align",
           "conv_small_maps"]


def multiscale_roi_align(featmap_names, output_size, sampling_ratio, featmap_strides=None):
    """The pooler: `edudet.MultiScaleRoIAlign` (FPN eq. 1 level mapping + RoIAlign per level); `featmap_strides`:
    None (each level's scale inferred as torchvision does) or the strides, checked against the maps at every call."""
    return MultiScaleRoIAlign(list(featmap_names), output_size, sampling_ratio, featmap_strides=featmap_strides)


# the column matrix of `conv_small_maps` is built for this many bytes of RoIs at a time: wide enough for BLAS
# (16 MB is ~35 RoIs of 7 x 7 x 256: 1,700 columns), small enough to keep the v2 box head under torchvision's peak
_SMALL_MAP_COLUMN_BYTES = 16 * 2**20


def conv_small_maps(conv: Conv2d, x: np.ndarray, relu: bool = False) -> np.ndarray:
    """``(K, C, h, w)`` -> ``(K, C_out, h, w)``: a stride-1, same-padding `conv` on many small maps (RoIs) at once.

    The same numbers as ``conv(x)``, which runs one map at a time: a 7 x 7 RoI gives a product with 49
    columns, too thin for BLAS to be fast. Here the patches of many RoIs sit side by side in one
    ``(C k k, n h w)`` column matrix (built for ~16 MB of RoIs at a time), so each product is wide.
    """
    k, p = conv.kernel_size, conv.padding
    if conv.stride != 1 or 2 * p != k - 1:
        raise ValueError(f"conv_small_maps needs a stride-1 conv that keeps the size, got {conv!r}")
    count, channels, h, w = x.shape
    out = np.empty((count, conv.out_channels, h, w), np.float32)
    per_chunk = max(1, _SMALL_MAP_COLUMN_BYTES // (4 * channels * k * k * h * w))
    for start in range(0, count, per_chunk):
        part = x[start: start + per_chunk]
        n = part.shape[0]
        padded = np.zeros((n, channels, h + 2 * p, w + 2 * p), np.float32)  # the chunk's RoIs only
        padded[:, :, p: p + h, p: p + w] = part
        cols = np.empty((channels, k, k, n, h, w), np.float32)  # rows (c, dy, dx) as the weight matrix's columns
        for dy in range(k):
            for dx in range(k):
                cols[:, dy, dx] = padded[:, :, dy: dy + h, dx: dx + w].transpose(1, 0, 2, 3)
        product = conv.matrix @ cols.reshape(channels * k * k, n * h * w)  # (C_out, n h w)
        out[start: start + n] = product.reshape(conv.out_channels, n, h, w).transpose(1, 0, 2, 3)
    out += conv.bias[:, None, None]
    return relu_(out) if relu else out


class TwoMLPHead(StateModule):
    """``(K, C, 7, 7)`` pooled features -> ``(K, representation_size)``: flatten, fc6 + ReLU, fc7 + ReLU."""

    def __init__(self, in_channels: int, representation_size: int = 1024):
        self.fc6 = Linear(in_channels, representation_size)
        self.fc7 = Linear(representation_size, representation_size)
        self.out_features = representation_size

    def children(self):
        return {"fc6": self.fc6, "fc7": self.fc7}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))  # (K, C 7 7), also for K = 0
        return self.fc7(self.fc6(flat, relu=True), relu=True)


class FastRCNNConvFCHead(StateModule):
    """``(K, C, h, w)`` pooled features -> ``(K, fc_layers[-1])``: per entry of `conv_layers` a 3x3 conv
    (+ batch norm) + ReLU, then flatten and per entry of `fc_layers` a fully connected layer + ReLU.

    torchvision's ``FastRCNNConvFCHead``, the v2 box head (``input_size=(256, 7, 7)``, four convs of 256 with
    ``BatchNorm2d``, one FC of 1024). Keys, numbered as its ``Sequential``: conv ``i`` is ``{i}.0.weight``
    (no bias when a norm follows) and its norm ``{i}.1.*`` (folded into the conv at load); then a flatten
    and FC ``j`` at ``{len(conv_layers) + 1 + 2 j}`` (each FC is followed by its ReLU).
    """

    def __init__(self, input_size=(256, 7, 7), conv_layers=(256, 256, 256, 256), fc_layers=(1024,),
                 batch_norm: bool = True, bn_eps: float = 1e-5):
        channels, height, width = (int(v) for v in input_size)
        self.batch_norm, self.bn_eps = bool(batch_norm), float(bn_eps)
        self.convs = []
        for width_out in conv_layers:
            self.convs.append(Conv2d(channels, width_out, 3, padding=1, bias=not self.batch_norm))
            channels = width_out
        features = channels * height * width
        self.fcs = []
        for width_out in fc_layers:
            self.fcs.append(Linear(features, width_out))
            features = width_out
        self.out_features = features

    def children(self):
        children = {}
        for i, conv in enumerate(self.convs):
            children[f"{i}.0"] = conv
            if self.batch_norm:
                children[f"{i}.1"] = FrozenBatchNorm2d(conv, self.bn_eps)
        first_fc = len(self.convs) + 1  # the Sequential's flatten sits between the convs and the FCs
        children.update({f"{first_fc + 2 * j}": fc for j, fc in enumerate(self.fcs)})
        return children

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for conv in self.convs:
            x = conv_small_maps(conv, x, relu=True)
        x = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))  # (K, C h w) in torch's flatten order, also for K = 0
        for fc in self.fcs:
            x = fc(x, relu=True)
        return x


class FastRCNNPredictor(StateModule):
    """``(K, D)`` -> class logits ``(K, num_classes)`` and deltas ``(K, 4 num_classes)`` (class 0: background)."""

    def __init__(self, in_channels: int, num_classes: int):
        self.num_classes = num_classes
        self.cls_score = Linear(in_channels, num_classes)
        self.bbox_pred = Linear(in_channels, num_classes * 4)

    def children(self):
        return {"cls_score": self.cls_score, "bbox_pred": self.bbox_pred}

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.cls_score(x), self.bbox_pred(x)


class RoIHeads(StateModule):
    """Features and proposals -> per image ``{"boxes": (K, 4) float32, "labels": (K,) int64, "scores": (K,) float32}``,
    in the resized image's pixels (see the module docstring for the rule)."""

    def __init__(self, box_roi_pool, box_head: TwoMLPHead | FastRCNNConvFCHead, box_predictor: FastRCNNPredictor,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
                 bbox_reg_weights=(10.0, 10.0, 5.0, 5.0)):
        self.box_roi_pool, self.box_head, self.box_predictor = box_roi_pool, box_head, box_predictor
        self.score_thresh = check_scalar(score_thresh, "score_thresh", low=0, high=1)
        self.nms_thresh = check_scalar(nms_thresh, "nms_thresh", low=0, high=1)
        self.detections_per_img = check_scalar(detections_per_img, "detections_per_img", low=1, integer=True)
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.mask_branch = None  # Mask R-CNN sets a `mask_rcnn.MaskBranch`, run on the final detections

    def children(self):
        children = {"box_head": self.box_head, "box_predictor": self.box_predictor}
        if self.mask_branch is not None:
            children.update(self.mask_branch.children())
        return children

    def __call__(self, features, proposals: list[np.ndarray], image_sizes, trace=NULL_TRACE) -> list[dict]:
        if len(proposals) <= 1:
            class_logits, box_regression = self._predict(features, proposals, image_sizes, trace)
        else:
            # a batch goes through the pooler and the box head one image at a time (two stages per image in the
            # trace): the same work and the same arrays as a single-image call, (1000, 256, 7, 7) pooled floats
            # (50 MB) kept by the pooler instead of N times that (measured before the pooler kept its arrays: the
            # fresh pages of a batch's pooled features cost 149 ms of system time on 2 x 320 x 480, two single
            # calls 57 ms), so a batch's peak memory and time per image are those of one image
            parts = [self._predict({name: level[i: i + 1] for name, level in features.items()}, [boxes],
                                   [image_sizes[i]], trace) for i, boxes in enumerate(proposals)]
            class_logits = np.concatenate([logits for logits, _ in parts])
            box_regression = np.concatenate([codes for _, codes in parts])
        with trace.stage("roi_heads.postprocess") as stage:
            detections = self.postprocess_detections(class_logits, box_regression, proposals, image_sizes)
            stage.add("boxes", [d["boxes"] for d in detections])
        if self.mask_branch is not None:
            self.mask_branch(features, detections, image_sizes, trace)
        return detections

    def _predict(self, features, proposals: list[np.ndarray], image_sizes, trace) -> tuple[np.ndarray, np.ndarray]:
        """Pool the proposals, run the box head and the predictor: ``(class_logits (K, classes), box_regression
        (K, 4 classes))`` for the K proposals of these images, in order."""
        with trace.stage("roi_heads.box_roi_pool") as stage:
            # reuse: the pooler's arrays from the last call (no fresh 50 MB per image); the box head reads them now
            pooled = self.box_roi_pool.pool_model_features(features, proposals, image_sizes, reuse=True)
            stage.add("box_features", pooled)
        with trace.stage("roi_heads.box_head") as stage:
            hidden = self.box_head(pooled)
            del pooled  # (K, 256, 7, 7): free before the predictor allocates
            class_logits, box_regression = self.box_predictor(hidden)
            stage.add("representation", hidden)
            stage.add("class_logits", class_logits)
            stage.add("box_regression", box_regression)
        return class_logits, box_regression

    def postprocess_detections(self, class_logits, box_regression, proposals, image_sizes) -> list[dict]:
        """Every image at once: softmax, then only the (proposal, class) pairs scoring above `score_thresh` are
        decoded and clipped (each value is computed exactly as when decoding all), one NMS whose categories are
        (image, class) pairs, then the best `detections_per_img` of each image."""
        num_classes = class_logits.shape[1]
        counts = [p.shape[0] for p in proposals]
        all_proposals = np.concatenate(proposals) if proposals else np.zeros((0, 4), np.float32)
        # class 0 is the background: every other class's prediction becomes a candidate of its own
        scores = softmax(class_logits, axis=-1)[:, 1:].reshape(-1)
        candidate = np.flatnonzero(scores > np.float32(self.score_thresh))  # float32, as torch compares
        proposal, labels = np.divmod(candidate, num_classes - 1)
        labels += 1
        if 2 * len(candidate) > len(scores):
            # most pairs pass (a threshold of 0): decoding every pair beats gathering the candidates first
            boxes = self.box_coder.decode(box_regression, all_proposals)[:, 1:].reshape(-1, 4)[candidate]
        elif len(candidate):
            codes = box_regression.reshape(-1, 4)[proposal * num_classes + labels]
            boxes = self.box_coder.decode(codes, all_proposals[proposal])
        else:
            boxes = np.zeros((0, 4), np.float32)
        scores = scores[candidate]
        # candidates come proposal after proposal, so image after image: clip each image's run to its size
        clip_per_image(boxes, np.searchsorted(proposal, np.cumsum([0] + counts)), image_sizes)
        image = np.repeat(np.arange(len(image_sizes)), counts)[proposal]
        keep = remove_small_boxes(boxes, 1e-2)
        boxes, scores, labels, image = boxes[keep], scores[keep], labels[keep], image[keep]
        keep = batched_nms(boxes, scores, image * num_classes + labels, self.nms_thresh)  # by score, as per image
        results = []
        for i in range(len(image_sizes)):
            mine = keep[image[keep] == i][: self.detections_per_img]
            results.append({"boxes": np.ascontiguousarray(boxes[mine], np.float32),
                            "labels": np.ascontiguousarray(labels[mine], np.int64),
                            "scores": np.ascontiguousarray(scores[mine], np.float32)})
        return results
