"""edudet.models.maskrcnn_resnet50_fpn against hand values and torchvision's Mask R-CNN, stage by stage.

One torchvision model (seeded, batch norms with non-trivial statistics) and one forward pass of each model
are shared by the module; edudet's stages come from a trace that keeps its arrays.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edudet.models as models
from edudet.demo import sample_image
from edudet.models.layers import ConvTranspose2d
from edudet.models.mask_rcnn import MaskRCNNPredictor
from edudet.models.weights import normalize_state_dict
from tests.model_parity import assert_top_detections_match, parity_image, torchvision_detector, traced_detections

SMALL = dict(min_size=320, max_size=512, box_score_thresh=0.0)


# hand cases -----------------------------------------------------------------------------------------------
def test_conv_transpose_by_hand():
    # one channel in and out, kernel [[1, 2], [3, 4]], bias 0.5: input pixel v writes v * kernel + 0.5
    # into its own 2 x 2 block; input [[1, 10]] -> [[1, 2, 10, 20], [3, 4, 30, 40]] + 0.5
    layer = ConvTranspose2d(1, 1, 2)
    layer.set_weight(np.array([[[[1, 2], [3, 4]]]], np.float32), np.array([0.5], np.float32))
    out = layer(np.array([[[[1, 10]]]], np.float32))
    np.testing.assert_array_equal(out[0, 0], [[1.5, 2.5, 10.5, 20.5], [3.5, 4.5, 30.5, 40.5]])
    assert layer.weight_shape == (1, 1, 2, 2)


# properties -----------------------------------------------------------------------------------------------
@given(st.integers(0, 2**31 - 1), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))
def test_conv_transpose_equals_the_sum_over_inputs(seed, n, h, w):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3, h, w)).astype(np.float32)
    weight = rng.normal(size=(3, 5, 2, 2)).astype(np.float32)
    layer = ConvTranspose2d(3, 5, 2)
    layer.set_weight(weight, np.zeros(5, np.float32))
    # the definition, pixel by pixel: out[o, 2i + dy, 2j + dx] = sum_c W[c, o, dy, dx] x[c, i, j]
    expected = np.zeros((n, 5, 2 * h, 2 * w))
    for i in range(h):
        for j in range(w):
            expected[:, :, 2 * i: 2 * i + 2, 2 * j: 2 * j + 2] = np.einsum("nc,cokl->nokl", x[:, :, i, j], weight)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)


@given(st.integers(0, 2**31 - 1), st.integers(0, 6))
def test_predictor_own_class_equals_full_conv_then_select(seed, k):
    rng = np.random.default_rng(seed)
    predictor = MaskRCNNPredictor(8, 6, 5)
    predictor.load_state({"conv5_mask.weight": rng.normal(size=(8, 6, 2, 2)), "conv5_mask.bias": rng.normal(size=6),
                          "mask_fcn_logits.weight": rng.normal(size=(5, 6, 1, 1)),
                          "mask_fcn_logits.bias": rng.normal(size=5)})
    x = rng.normal(size=(k, 8, 3, 3)).astype(np.float32)
    labels = rng.integers(0, 5, k)
    full = predictor(x)
    assert full.shape == (k, 5, 6, 6)
    np.testing.assert_allclose(predictor(x, labels), full[np.arange(k), labels][:, None], rtol=1e-5, atol=1e-5)


def test_legacy_mask_head_names_are_renamed():
    expected = {"roi_heads.mask_head.0.0.weight": (2,), "roi_heads.mask_head.3.0.bias": (2,)}
    state = normalize_state_dict({"roi_heads.mask_head.mask_fcn1.weight": np.zeros(2),
                                  "roi_heads.mask_head.mask_fcn4.bias": np.zeros(2)}, expected)
    assert sorted(state) == sorted(expected)


# parity with torchvision ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run():
    torch, torchvision, tv_model = torchvision_detector("maskrcnn_resnet50_fpn", **SMALL)
    image, tensor = parity_image(torch)
    model = models.maskrcnn_resnet50_fpn(tv_model.state_dict(), **SMALL)
    ours, recorded = traced_detections(model, image)
    with torch.no_grad():
        detections = tv_model([tensor])[0]
        # the mask branch alone, on edudet's own detection boxes (in the resized image), for stage parity
        image_list, _ = tv_model.transform([tensor])
        features = tv_model.backbone(image_list.tensors)
        boxes = torch.from_numpy(recorded["roi_heads.postprocess"].arrays["boxes[0]"])
        labels = torch.from_numpy(ours["labels"])
        pooled = tv_model.roi_heads.mask_roi_pool(features, [boxes], image_list.image_sizes)
        logits = tv_model.roi_heads.mask_predictor(tv_model.roi_heads.mask_head(pooled))
        probs = torchvision.models.detection.roi_heads.maskrcnn_inference(logits, [labels])[0]
    tv = dict(detections={k: v.numpy() for k, v in detections.items()}, mask_features=pooled.numpy(),
              mask_probs=probs.numpy())
    return dict(tv=tv, model=model, trace=recorded, detections=ours, tv_model=tv_model)


def test_mask_branch_stages(run):
    stages = run["trace"]
    pooled = stages["roi_heads.mask_roi_pool"].arrays["mask_features"]
    assert pooled.shape == run["tv"]["mask_features"].shape == (100, 256, 14, 14)
    np.testing.assert_allclose(pooled, run["tv"]["mask_features"], rtol=0,
                               atol=1e-5 * np.abs(run["tv"]["mask_features"]).max())
    probs = stages["roi_heads.mask_head"].arrays["mask_probs"]
    assert probs.shape == (100, 1, 28, 28) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, run["tv"]["mask_probs"], rtol=0, atol=1e-4)


def test_detections_and_masks_match_torchvision(run):
    ours, tv = run["detections"], run["tv"]["detections"]
    for i, j in assert_top_detections_match(ours, tv):
        np.testing.assert_allclose(ours["masks"][j], tv["masks"][i], rtol=0, atol=2e-3, err_msg=f"mask {i}")


def test_output_types_and_trace(run):
    d = run["detections"]
    assert d["masks"].shape == (len(d["boxes"]), 1, 240, 320) and d["masks"].dtype == np.float32
    assert d["masks"].min() >= 0 and d["masks"].max() <= 1
    # the mask lives in (a padded copy of) its box: nothing far outside the box
    x1, y1, x2, y2 = d["boxes"][0]
    outside = d["masks"][0, 0].copy()
    outside[max(int(y1) - 2, 0): int(y2) + 3, max(int(x1) - 2, 0): int(x2) + 3] = 0
    assert outside.max() == 0
    names = [s.name for s in run["trace"].stages]
    assert names == ["transform", "backbone.body", "backbone.fpn", "rpn.head", "rpn.anchors", "rpn.filter_proposals",
                     "roi_heads.box_roi_pool", "roi_heads.box_head", "roi_heads.postprocess",
                     "roi_heads.mask_roi_pool", "roi_heads.mask_head", "transform.postprocess"]


def test_no_detections(run):
    model = run["model"]
    model.roi_heads.score_thresh = 1.0  # no softmax score is > 1: nothing survives
    try:
        results = model([np.zeros((3, 40, 60), np.float32), sample_image(50, 30, seed=1)])
    finally:
        model.roi_heads.score_thresh = SMALL["box_score_thresh"]
    for r, (h, w) in zip(results, [(40, 60), (50, 30)]):
        assert r["boxes"].shape == (0, 4) and r["labels"].dtype == np.int64
        assert r["masks"].shape == (0, 1, h, w) and r["masks"].dtype == np.float32


def test_batch_of_two_keeps_masks_apart(run):
    model = run["model"]
    model.roi_heads.detections_per_img = 7
    try:
        results = model([sample_image(60, 80, seed=1), sample_image(90, 50, seed=2)])
    finally:
        model.roi_heads.detections_per_img = 100
    for r, (h, w) in zip(results, [(60, 80), (90, 50)]):
        assert r["boxes"].shape == (7, 4) and r["masks"].shape == (7, 1, h, w)
        # each mask sits on its own box: the most probable pixel of mask k lies inside (a padded copy of) box k
        for box, mask in zip(r["boxes"], r["masks"][:, 0]):
            y, x = np.unravel_index(np.argmax(mask), mask.shape)
            assert box[0] - 2 <= x <= box[2] + 2 and box[1] - 2 <= y <= box[3] + 2


def test_weights(run):
    state = run["tv_model"].state_dict()
    assert models.architecture_of(state) == "maskrcnn_resnet50_fpn"
    assert "roi_heads.mask_predictor.conv5_mask.weight" in run["model"].state_dict()
    extra = dict(state)
    extra["roi_heads.mask_predictor.extra.weight"] = np.zeros(3)
    with pytest.raises(ValueError, match="unexpected: roi_heads.mask_predictor.extra.weight"):
        models.maskrcnn_resnet50_fpn(extra)
    # Faster R-CNN weights lack the mask branch: strict loading names what is missing
    with pytest.raises(ValueError, match="missing: roi_heads.mask_head.0.0.weight"):
        models.maskrcnn_resnet50_fpn({k: v for k, v in state.items() if "mask" not in k})


def test_bad_arguments():
    backbone = models.faster_rcnn.resnet50_fpn_backbone()
    with pytest.raises(TypeError, match="mask_head"):
        models.MaskRCNN(backbone, mask_head="four convs")
    with pytest.raises(ValueError, match="box_nms_thresh"):
        models.MaskRCNN(backbone, box_nms_thresh=2)
    with pytest.raises(ValueError, match="downloads nothing"):
        models.maskrcnn_resnet50_fpn(weights_backbone="IMAGENET1K_V1")


def test_demo_draws_masks(tmp_path, capsys):
    from edudet.demo import main

    weights = tmp_path / "m.npz"
    models.maskrcnn_resnet50_fpn(seed=1, num_classes=3).save(weights)
    assert main(["--weights", str(weights), "--min-size", "64", "--out", str(tmp_path / "m.png"),
                 "--score-thresh", "0.0"]) == 0
    out = capsys.readouterr().out
    assert "loading weights" in out and "roi_heads.mask_head" in out and "score > 0.0" in out
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert isinstance(models.load(weights), models.MaskRCNN)
