"""edudet.models.fasterrcnn_resnet50_fpn against torchvision's, on the same random weights, stage by stage.

One torchvision model (seeded, batch norms with non-trivial statistics) and one forward pass of each
model are shared by the whole module; edudet's stages come from a trace that keeps its arrays.
"""
import numpy as np
import pytest

import edudet.models as models
from edudet.demo import sample_image
from edudet.ops import box_iou
from tests.model_parity import assert_top_detections_match, parity_image, torchvision_detector, traced_detections

SMALL = dict(min_size=320, max_size=512, box_score_thresh=0.0)


@pytest.fixture(scope="module")
def run():
    torch, _, tv_model = torchvision_detector("fasterrcnn_resnet50_fpn", **SMALL)
    image, tensor = parity_image(torch)
    with torch.no_grad():
        image_list, _ = tv_model.transform([tensor])
        features = tv_model.backbone(image_list.tensors)
        feature_list = list(features.values())
        objectness, deltas = tv_model.rpn.head(feature_list)
        anchors = tv_model.rpn.anchor_generator(image_list, feature_list)[0]
        proposals, _ = tv_model.rpn(image_list, features)
        detections = tv_model([tensor])[0]
    tv = dict(images=image_list.tensors.numpy(), features={k: v.numpy() for k, v in features.items()},
              objectness=[o.numpy() for o in objectness], deltas=[d.numpy() for d in deltas],
              anchors=anchors.numpy(), proposals=proposals[0].numpy(),
              detections={k: v.numpy() for k, v in detections.items()})

    model = models.fasterrcnn_resnet50_fpn(tv_model.state_dict(), **SMALL)
    ours, recorded = traced_detections(model, image)
    return dict(tv=tv, model=model, trace=recorded, detections=ours, image=image, tv_model=tv_model)


def test_transform_stage(run):
    images = run["trace"]["transform"].arrays["images"]
    assert images.shape == run["tv"]["images"].shape == (1, 3, 320, 448)
    np.testing.assert_allclose(images, run["tv"]["images"], rtol=0, atol=1e-5)


def test_backbone_fpn_features(run):
    ours = run["trace"]["backbone.fpn"].arrays
    for name, expected in run["tv"]["features"].items():
        got = ours[f"P[{name}]"]
        assert got.shape == expected.shape, name
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * scale, err_msg=f"FPN level {name}")


def test_rpn_head_outputs(run):
    stage = run["trace"]["rpn.head"].arrays
    for level, (obj, delta) in enumerate(zip(run["tv"]["objectness"], run["tv"]["deltas"])):
        np.testing.assert_allclose(stage[f"objectness[{level}]"], obj, rtol=0, atol=1e-4)
        np.testing.assert_allclose(stage[f"deltas[{level}]"], delta, rtol=0, atol=1e-4)


def test_anchors_exact(run):
    np.testing.assert_array_equal(run["trace"]["rpn.anchors"].arrays["anchors"], run["tv"]["anchors"])


def test_proposals(run):
    ours = run["trace"]["rpn.filter_proposals"].arrays["proposals[0]"]
    expected = run["tv"]["proposals"]
    assert ours.shape == expected.shape == (1000, 4)
    # the same boxes in the same order, except where two scores tie to float precision and swap
    same_row = np.abs(ours - expected).max(axis=1) < 1e-3
    assert same_row.mean() >= 0.98
    iou = box_iou(ours, expected)
    assert (iou.max(axis=1) > 0.999).all() and (iou.max(axis=0) > 0.999).all()


def test_detections_match_torchvision(run):
    assert_top_detections_match(run["detections"], run["tv"]["detections"])


def test_output_types(run):
    d = run["detections"]
    assert d["boxes"].dtype == np.float32 and d["scores"].dtype == np.float32 and d["labels"].dtype == np.int64
    assert d["boxes"].shape == (len(d["scores"]), 4) == (len(d["labels"]), 4)
    assert (np.diff(d["scores"]) <= 0).all()  # sorted by decreasing score
    # boxes are in the original 240 x 320 image
    assert d["boxes"][:, [0, 2]].max() <= 320 and d["boxes"][:, [1, 3]].max() <= 240 and d["boxes"].min() >= 0
    assert ((d["labels"] >= 1) & (d["labels"] <= 90)).all()


def test_trace_table(run):
    recorded = run["trace"]
    names = [s.name for s in recorded.stages]
    assert names == ["transform", "backbone.body", "backbone.fpn", "rpn.head", "rpn.anchors", "rpn.filter_proposals",
                     "roi_heads.box_roi_pool", "roi_heads.box_head", "roi_heads.postprocess", "transform.postprocess"]
    # 320 x 448 padded input: P2 80 x 112 ... pool 5 x 7; anchors 3 (80*112 + 40*56 + 20*28 + 10*14 + 5*7) = 35805
    assert recorded["backbone.fpn"].outputs["P[0]"] == (1, 256, 80, 112)
    assert recorded["backbone.fpn"].outputs["P[pool]"] == (1, 256, 5, 7)
    assert recorded["rpn.anchors"].outputs["anchors"] == (35805, 4)
    assert recorded["roi_heads.box_roi_pool"].outputs["box_features"] == (1000, 256, 7, 7)
    table = str(recorded)
    assert "rpn.anchors" in table and "35805 x 4" in table and "total" in table


def test_no_detections_and_batches(run):
    model = run["model"]
    saved = model.roi_heads.score_thresh
    model.roi_heads.score_thresh = 1.0  # no softmax score is > 1: nothing survives
    try:
        results, recorded = model([np.zeros((3, 40, 60), np.float32), sample_image(50, 30, seed=1)], trace=True)
    finally:
        model.roi_heads.score_thresh = saved
    assert len(results) == 2
    for r in results:
        assert r["boxes"].shape == (0, 4) and r["boxes"].dtype == np.float32
        assert r["labels"].shape == (0,) and r["labels"].dtype == np.int64
        assert r["scores"].shape == (0,) and r["scores"].dtype == np.float32
    # 40 x 60 -> 320 x 480, 50 x 30 -> 533 x 320 (max_size 512 wins: s = 512 / 50 -> 512 x 307); padded 512 x 480
    assert recorded["transform"].outputs["images"] == (2, 3, 512, 480)


def test_no_proposals(run):
    model = run["model"]
    saved = model.rpn.score_thresh
    model.rpn.score_thresh = 1.0  # sigmoid reaches 1.0 in float32 only for logits > ~17; these are near 0
    try:
        (result,), recorded = model([np.zeros((3, 40, 60), np.float32)], trace=True)
    finally:
        model.rpn.score_thresh = saved
    assert recorded["rpn.filter_proposals"].outputs["proposals[0]"] == (0, 4)
    assert recorded["roi_heads.box_roi_pool"].outputs["box_features"] == (0, 256, 7, 7)
    assert result["boxes"].shape == (0, 4) and result["labels"].dtype == np.int64


@pytest.mark.parametrize("images,error,match", [
    ([], ValueError, "empty"),
    ([np.zeros((40, 60), np.float32)], ValueError, r"\(3, H, W\)"),
    ([np.zeros((4, 40, 60), np.float32)], ValueError, "3 channels"),
    ([np.full((3, 40, 60), np.nan, np.float32)], ValueError, "NaN"),
    # issue 12: a side that would resize to 0 pixels is refused by name, not a raw broadcast error
    ([np.zeros((3, 40, 60), np.float32), np.zeros((3, 1, 10000), np.float32)], ValueError,
     r"images\[1\] of 1 x 10000 pixels would be resized to 0 x"),
])
def test_bad_images(run, images, error, match):
    with pytest.raises(error, match=match):
        run["model"](images)


def test_bad_arguments():
    with pytest.raises(ValueError, match="box_nms_thresh"):
        models.FasterRCNN(models.faster_rcnn.resnet50_fpn_backbone(), box_nms_thresh=-0.1)
    with pytest.raises(ValueError, match="num_classes"):
        models.FasterRCNN(models.faster_rcnn.resnet50_fpn_backbone(), num_classes=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        models.FasterRCNN(models.faster_rcnn.resnet50_fpn_backbone(), box_score_threshold=0.1)
    with pytest.raises(ValueError, match="downloads nothing"):
        models.fasterrcnn_resnet50_fpn(weights_backbone="IMAGENET1K_V1")


def test_integer_arguments_nan_inf_huge_and_zero_d():
    backbone = models.faster_rcnn.resnet50_fpn_backbone()
    for keyword, value in (("box_detections_per_img", np.nan), ("rpn_post_nms_top_n_test", np.inf),
                           ("rpn_pre_nms_top_n_test", 2**64), ("representation_size", 0.5), ("min_size", np.nan)):
        with pytest.raises(ValueError, match=keyword):
            models.FasterRCNN(backbone, **{keyword: value})
    model = models.FasterRCNN(backbone, num_classes=np.array(5), box_detections_per_img=np.array(9),
                              box_score_thresh=np.float32(0.25))
    assert model.roi_heads.detections_per_img == 9 and model.config["box_detections_per_img"] == 9
    assert type(model.config["box_score_thresh"]) is float
