"""What the model parity tests share: a seeded torchvision detector with non-trivial norms, and detection matching.

Every ``tests/test_models_<detector>.py`` builds the torchvision model the same way, runs it and edudet's on
the same image, and counts how many of torchvision's best detections edudet reproduces.
"""
import numpy as np

import edudet.models as models
from edudet.demo import sample_image
from edudet.models.rpn import flatten_level
from edudet.ops import box_iou
from tests.helpers import import_torchvision


def randomise_norms(model, torch) -> None:
    """Give every BatchNorm2d and GroupNorm of a torch `model` seeded, non-trivial statistics and affine weights.

    Identity statistics (torchvision's fresh BatchNorm2d) would hide mistakes in folding a norm into its conv.
    """
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
                n = module.weight.shape[0]
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                    module.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)


def torchvision_detector(name: str, **options):
    """``(torch, torchvision, model)``: torchvision's detector `name` (seed 0, norms randomised), in eval mode."""
    torch, torchvision = import_torchvision()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = getattr(torchvision.models.detection, name)(weights=None, weights_backbone=None, **options).eval()
    randomise_norms(model, torch)
    return torch, torchvision, model


def parity_image(torch):
    """The test image as edudet takes it, ``(240, 320, 3)`` uint8, and as torchvision does, ``(3, H, W)`` in [0, 1]."""
    image = sample_image(240, 320, seed=3)
    return image, torch.from_numpy(image).permute(2, 0, 1).float() / 255


def traced_detections(model, image):
    """edudet's detections of one image and the trace of that forward pass, arrays kept."""
    with models.trace(keep_arrays=True) as recorded:
        detections = model([image])[0]
    return detections, recorded


def matched_detections(ours: dict, theirs: dict, top: int) -> list[tuple[int, int]]:
    """``(i, j)`` for each of torchvision's first `top` detections ``i`` that edudet's detection ``j`` reproduces.

    A match has IoU > 0.99, the same label and a score within 1e-3; ``j`` is the best-overlapping such detection.
    """
    iou = box_iou(theirs["boxes"][:top], ours["boxes"])
    pairs = []
    for i in range(top):
        same_score = np.abs(ours["scores"] - theirs["scores"][i]) < 1e-3
        match = (iou[i] > 0.99) & (ours["labels"] == theirs["labels"][i]) & same_score
        if match.any():
            pairs.append((i, int(np.argmax(np.where(match, iou[i], -1)))))
    return pairs


def assert_top_detections_match(ours: dict, theirs: dict) -> list[tuple[int, int]]:
    """At least 90% of torchvision's top 30 (at least 10) detections are reproduced; returns the matched pairs."""
    top = min(30, len(theirs["boxes"]))
    assert top >= 10
    pairs = matched_detections(ours, theirs, top)
    assert len(pairs) >= 0.9 * top, f"only {len(pairs)} of torchvision's top {top} detections matched"
    return pairs


def one_stage_run(name: str, **options) -> dict:
    """RetinaNet's or FCOS's parity fixture: torchvision's FPN levels, head outputs, anchors and detections of
    the test image, and edudet's model (same weights), its detections and its trace."""
    torch, _, tv_model = torchvision_detector(name, **options)
    image, tensor = parity_image(torch)
    with torch.no_grad():
        image_list, _ = tv_model.transform([tensor])
        features = list(tv_model.backbone(image_list.tensors).values())
        head = tv_model.head(features)
        anchors = tv_model.anchor_generator(image_list, features)[0]
        detections = tv_model([tensor])[0]
    tv = dict(features=[f.numpy() for f in features], head={k: v.numpy() for k, v in head.items()},
              anchors=anchors.numpy(), detections={k: v.numpy() for k, v in detections.items()})
    model = getattr(models, name)(tv_model.state_dict(), **options)
    ours, recorded = traced_detections(model, image)
    return dict(tv=tv, model=model, trace=recorded, detections=ours, tv_model=tv_model)


def assert_head_outputs_match(stage, tv_head: dict, values_per_anchor: dict, levels: int = 5) -> None:
    """A dense head's traced per-level outputs, flattened and concatenated as torchvision's are, match them."""
    for name, per_anchor in values_per_anchor.items():
        ours = np.concatenate([flatten_level(stage.arrays[f"{name}[{i}]"], per_anchor) for i in range(levels)], axis=1)
        expected = tv_head[name]
        assert ours.shape == expected.shape
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4 * max(1.0, np.abs(expected).max()), err_msg=name)
