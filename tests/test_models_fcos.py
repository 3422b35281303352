"""edudet.models.fcos_resnet50_fpn (and its GroupNorm) against hand values and torchvision's FCOS, stage by stage.

One torchvision model (seeded, batch and group norms with non-trivial statistics) and one forward pass of
each model are shared by the module; edudet's stages come from a trace that keeps its arrays.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edudet.models as models
from edudet.anchors import AnchorGenerator
from edudet.demo import sample_image
from edudet.models.fcos import linear_decode
from edudet.models.layers import GroupNorm
from tests.model_parity import assert_head_outputs_match, assert_top_detections_match, one_stage_run

SMALL = dict(min_size=320, max_size=512, score_thresh=0.0)


# hand cases -----------------------------------------------------------------------------------------------
def test_linear_decode_by_hand():
    # anchor (12, 20, 20, 28): centre (16, 24), size 8 x 8; distances (1, 0.5, 2, 0.25) anchor sizes
    # -> (16 - 8, 24 - 4, 16 + 16, 24 + 2) = (8, 20, 32, 26)
    boxes = linear_decode(np.array([[1, 0.5, 2, 0.25]], np.float32), np.array([[12, 20, 20, 28]], np.float32))
    np.testing.assert_array_equal(boxes, [[8, 20, 32, 26]])
    assert boxes.dtype == np.float32


def test_group_norm_by_hand():
    # one image, 4 channels of 1 pixel, 2 groups: group 0 = (1, 3): mean 2, var 1 -> (-1, 1) / sqrt(1 + eps);
    # group 1 = (5, 5): var 0 -> 0 / sqrt(eps) = 0; then weight (1, 2, 3, 4), bias (0, 0, 1, 1)
    norm = GroupNorm(2, 4)
    norm.set_weight(np.array([1, 2, 3, 4], np.float32), np.array([0, 0, 1, 1], np.float32))
    out = norm(np.array([1, 3, 5, 5], np.float32).reshape(1, 4, 1, 1))
    s = 1 / np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(out.ravel(), [-s, 2 * s, 1, 1], rtol=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        GroupNorm(32, 48)


def test_points_per_level_at_800_x_1216():
    # P3..P7 of an 800 x 1216 input: 100 x 152, 50 x 76, 25 x 38, 13 x 19, 7 x 10 locations
    model = models.FCOS(models.fcos.resnet50_fpn_p3p7_backbone())
    shapes = [(100, 152), (50, 76), (25, 38), (13, 19), (7, 10)]
    assert model.anchor_generator.num_anchors_per_level(shapes) == [15200, 3800, 950, 247, 70]
    anchors = model.anchor_generator((800, 1216), shapes)
    levels = np.split(anchors, np.cumsum([15200, 3800, 950, 247])[:4])
    for level, size in zip(levels, (8, 16, 32, 64, 128)):
        np.testing.assert_array_equal(level[:, 2] - level[:, 0], size)  # the anchor is stride-sized
    # torchvision's points are the anchors' centres, j * stride: P3's second location at x = 8, P6's
    # strides are 800 // 13 = 61 and 1216 // 19 = 64, so its location (1, 1) is the point (64, 61)
    centres = lambda a: (a[:, :2] + a[:, 2:]) / 2  # noqa: E731
    np.testing.assert_array_equal(centres(levels[0][:2]), [[0, 0], [8, 0]])
    np.testing.assert_array_equal(centres(levels[3])[19 + 1], [64, 61])


# properties -----------------------------------------------------------------------------------------------
@given(st.integers(0, 2**31 - 1), st.floats(0.5, 10), st.floats(-5, 5))
def test_group_norm_ignores_an_affine_change_of_each_group(seed, scale, shift):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 8, 3, 5)).astype(np.float32)
    norm = GroupNorm(4, 8)
    norm.set_weight(rng.uniform(0.5, 1.5, 8).astype(np.float32), rng.normal(size=8).astype(np.float32))
    a = norm(x.copy())
    b = norm((x * np.float32(scale) + np.float32(shift)).astype(np.float32))
    np.testing.assert_allclose(a, b, atol=5e-4)  # eps (1e-5) weighs a little more on a smaller variance
    plain = GroupNorm(4, 8)(x.copy()).reshape(2, 4, -1)  # weight 1, bias 0: zero mean, unit variance
    np.testing.assert_allclose(plain.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(plain.var(-1), 1, atol=1e-3)


@given(st.integers(0, 2**31 - 1))
def test_linear_decode_properties(seed):
    rng = np.random.default_rng(seed)
    size = rng.choice([8, 16, 32], size=20).astype(np.float32)
    centre = rng.uniform(0, 500, (20, 2)).astype(np.float32)
    anchors = np.concatenate([centre - size[:, None] / 2, centre + size[:, None] / 2], axis=1)
    distances = rng.uniform(0, 10, (20, 4)).astype(np.float32)
    boxes = linear_decode(distances, anchors)
    # non-negative distances give a box around the point, (l + r) anchor widths wide
    assert (boxes[:, :2] <= centre + 1e-3).all() and (boxes[:, 2:] >= centre - 1e-3).all()
    # the width is a difference of two float32 coordinates near the centre (up to ~700): each is rounded to
    # half an ulp, so the difference is good to ~2 ulps of the coordinates (2 * 2**-24 * 1024 = 1.2e-4)
    coordinate_ulp = np.spacing(np.abs(boxes).max().astype(np.float32))
    np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], (distances[:, 0] + distances[:, 2]) * size, rtol=1e-5,
                               atol=2 * coordinate_ulp)


# parity with torchvision ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run():
    return one_stage_run("fcos_resnet50_fpn", **SMALL)


def test_fpn_levels(run):
    ours = run["trace"]["backbone.fpn"].arrays
    names = ["0", "1", "2", "p6", "p7"]  # the backbone's declared out_names, torchvision's
    # 320 x 448 padded input: P3 40 x 56 ... P7 3 x 4
    assert [ours[f"P[{n}]"].shape[-2:] for n in names] == [(40, 56), (20, 28), (10, 14), (5, 7), (3, 4)]
    for name, expected in zip(names, run["tv"]["features"]):
        scale = np.abs(expected).max()
        np.testing.assert_allclose(ours[f"P[{name}]"], expected, rtol=0, atol=2e-5 * scale, err_msg=f"level {name}")


def test_head_outputs(run):
    tv = run["tv"]["head"]
    assert_head_outputs_match(run["trace"]["head"], tv, {"cls_logits": 91, "bbox_regression": 4, "bbox_ctrness": 1})
    assert (tv["bbox_regression"] >= 0).all()  # the ReLU on the distances


def test_anchors_exact(run):
    np.testing.assert_array_equal(run["trace"]["anchors"].arrays["anchors"], run["tv"]["anchors"])


def test_detections_match_torchvision(run):
    ours, tv = run["detections"], run["tv"]["detections"]
    assert_top_detections_match(ours, tv)
    assert len(ours["boxes"]) == len(tv["boxes"]) == 100  # detections_per_img


def test_output_types_and_trace(run):
    d = run["detections"]
    assert d["boxes"].dtype == np.float32 and d["scores"].dtype == np.float32 and d["labels"].dtype == np.int64
    assert (np.diff(d["scores"]) <= 0).all() and (d["scores"] <= 1).all()
    assert d["boxes"][:, [0, 2]].max() <= 320 and d["boxes"][:, [1, 3]].max() <= 240 and d["boxes"].min() >= 0
    names = [s.name for s in run["trace"].stages]
    assert names == ["transform", "backbone.body", "backbone.fpn", "head", "anchors", "postprocess",
                     "transform.postprocess"]
    # C3..C5 only (returned layers 2, 3, 4); one anchor per location:
    # 40*56 + 20*28 + 10*14 + 5*7 + 3*4 = 2240 + 560 + 140 + 35 + 12 = 2987
    assert [k for k in run["trace"]["backbone.body"].outputs] == ["C[0]", "C[1]", "C[2]"]
    assert run["trace"]["anchors"].outputs["anchors"] == (2987, 4)


def test_no_detections_and_batches(run):
    model = run["model"]
    model.score_thresh = 1.0  # sqrt of a product of two sigmoids never exceeds 1
    try:
        results = model([np.zeros((3, 40, 60), np.float32), sample_image(50, 30, seed=1)])
    finally:
        model.score_thresh = SMALL["score_thresh"]
    assert len(results) == 2
    for r in results:
        assert r["boxes"].shape == (0, 4) and r["boxes"].dtype == np.float32
        assert r["labels"].shape == (0,) and r["labels"].dtype == np.int64 and r["scores"].dtype == np.float32


def test_weights_round_trip_and_strict(run, tmp_path):
    state = run["tv_model"].state_dict()
    assert models.architecture_of(state) == "fcos_resnet50_fpn"
    assert models.num_classes_of(state, "fcos_resnet50_fpn") == 91
    path = run["model"].save(tmp_path / "fcos.npz")
    again = models.load(path)
    assert isinstance(again, models.FCOS) and again.score_thresh == 0.0
    np.testing.assert_array_equal(again.state_dict()["head.regression_head.bbox_ctrness.bias"],
                                  state["head.regression_head.bbox_ctrness.bias"].numpy())
    broken = {k: v for k, v in state.items() if k != "head.classification_head.conv.1.weight"}
    with pytest.raises(ValueError, match=r"missing: head\.classification_head\.conv\.1\.weight"):
        models.fcos_resnet50_fpn(broken)
    with pytest.raises(ValueError, match="num_classes=91"):
        models.fcos_resnet50_fpn(state, num_classes=3)


def test_bad_arguments():
    backbone = models.fcos.resnet50_fpn_p3p7_backbone()
    with pytest.raises(ValueError, match="nms_thresh"):
        models.FCOS(backbone, nms_thresh=1.5)
    with pytest.raises(ValueError, match="topk_candidates"):
        models.FCOS(backbone, topk_candidates=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        models.FCOS(backbone, box_score_thresh=0.1)
    with pytest.raises(ValueError, match="one anchor per location"):
        models.FCOS(backbone, anchor_generator=AnchorGenerator(((8, 16),) * 5, ((1.0,),) * 5))
    with pytest.raises(ValueError, match="downloads nothing"):
        models.fcos_resnet50_fpn(weights_backbone="IMAGENET1K_V1")
    models.FCOS(backbone, center_sampling_radius=1.5)  # training-only keyword: accepted
    # issue 12: NaN, inf, 2**64 by name; 0-d arrays unwrapped (the config must stay JSON numbers)
    for keyword, value in (("detections_per_img", np.nan), ("topk_candidates", 2**64), ("num_classes", np.inf),
                           ("score_thresh", np.nan), ("max_size", np.nan)):
        with pytest.raises(ValueError, match=keyword):
            models.FCOS(backbone, **{keyword: value})
    model = models.FCOS(backbone, num_classes=np.array(3), detections_per_img=np.array(7), topk_candidates=np.int64(50))
    assert (model.detections_per_img, model.topk_candidates, model.num_classes) == (7, 50, 3)
    assert type(model.config["detections_per_img"]) is int


def test_demo_draws_points(tmp_path, capsys):
    from edudet.demo import main

    assert main(["--model", "fcos", "--min-size", "64", "--out", str(tmp_path / "fcos.png")]) == 0
    out = capsys.readouterr().out
    assert "FCOS" in out and "RANDOM" in out and "| head" in out and "| anchors" in out
    assert (tmp_path / "fcos.png").read_bytes()[:4] == b"\x89PNG"


def test_convert_recognises_fcos(run, tmp_path):
    import torch

    from edudet.models.convert import main as convert_main

    torch.save(run["tv_model"].state_dict(), tmp_path / "fcos.pth")
    assert convert_main([str(tmp_path / "fcos.pth"), str(tmp_path / "fcos.npz")]) == 0
    converted = models.load(tmp_path / "fcos.npz")
    assert isinstance(converted, models.FCOS) and converted.num_classes == 91
    # the wrong architecture named explicitly: a clear failure, not a half-loaded model
    assert convert_main([str(tmp_path / "fcos.pth"), str(tmp_path / "x.npz"),
                         "--architecture", "retinanet_resnet50_fpn"]) == 1
