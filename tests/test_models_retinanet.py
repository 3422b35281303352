"""edudet.models.retinanet_resnet50_fpn against hand values and torchvision's RetinaNet (v1), stage by stage."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edudet.models as models
from edudet.models.one_stage import HeadTower
from edudet.models.retinanet import retinanet_anchor_generator
from edudet.models.weights import normalize_state_dict, random_state_dict
from tests.model_parity import assert_head_outputs_match, assert_top_detections_match, one_stage_run

SMALL = dict(min_size=320, max_size=512, score_thresh=0.0)


# hand cases -----------------------------------------------------------------------------------------------
def test_anchor_sizes_by_hand():
    # octave scales truncated: 32 * 2^(1/3) = 40.3 -> 40, 32 * 2^(2/3) = 50.8 -> 50; 512 -> 645, 812
    generator = retinanet_anchor_generator()
    assert generator.sizes[0] == (32, 40, 50) and generator.sizes[4] == (512, 645, 812)
    assert generator.num_anchors_per_location() == [9] * 5
    # ratio 1 anchors of P3's first location: squares of side 32, 40, 50 centred at (0, 0)
    np.testing.assert_array_equal(generator.cell_anchors[0][3:6], [[-16, -16, 16, 16], [-20, -20, 20, 20],
                                                                    [-25, -25, 25, 25]])


def test_prior_bias_and_legacy_names():
    model = models.RetinaNet(models.fcos.resnet50_fpn_p3p7_backbone())
    state = random_state_dict(model.state_shapes(), seed=0)
    # the focal-loss prior: sigmoid(bias) = 0.01 for every class at the start
    np.testing.assert_allclose(state["head.classification_head.cls_logits.bias"], -np.log(99), rtol=1e-6)
    assert not state["head.regression_head.bbox_reg.bias"].any()
    # torchvision < 0.13 numbered the tower Sequential(conv, relu, conv, relu, ...): conv.{2 i} -> conv.{i}.0
    renamed = normalize_state_dict({"head.classification_head.conv.6.weight": np.zeros((256, 256, 3, 3))},
                                   model.state_shapes())
    assert list(renamed) == ["head.classification_head.conv.3.0.weight"]


@given(st.integers(0, 2**31 - 1))
def test_tower_is_relu_of_convs(seed):
    rng = np.random.default_rng(seed)
    tower = HeadTower(4, num_convs=2)
    assert sorted(tower.state_shapes()) == ["0.0.bias", "0.0.weight", "1.0.bias", "1.0.weight"]
    tower.load_state({k: rng.normal(size=s) for k, s in tower.state_shapes().items()})
    x = rng.normal(size=(1, 4, 5, 6)).astype(np.float32)
    out = tower(x)
    assert out.shape == x.shape and out.min() >= 0
    np.testing.assert_allclose(out, tower.convs[1](tower.convs[0](x, relu=True), relu=True))


# parity with torchvision ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run():
    return one_stage_run("retinanet_resnet50_fpn", **SMALL)


def test_head_and_anchors(run):
    assert_head_outputs_match(run["trace"]["head"], run["tv"]["head"], {"cls_logits": 91, "bbox_regression": 4})
    anchors = run["trace"]["anchors"].arrays["anchors"]
    assert anchors.shape == (9 * 2987, 4)  # 9 per location of P3..P7 (40 x 56 ... 3 x 4)
    np.testing.assert_array_equal(anchors, run["tv"]["anchors"])


def test_detections_match_torchvision(run):
    ours, tv = run["detections"], run["tv"]["detections"]
    assert_top_detections_match(ours, tv)
    assert len(ours["boxes"]) == len(tv["boxes"]) == 300  # detections_per_img
    assert ours["labels"].dtype == np.int64 and (np.diff(ours["scores"]) <= 0).all()


def test_no_detections_and_arguments(run):
    model = run["model"]
    model.score_thresh = 1.0
    try:
        (result,) = model([np.zeros((3, 40, 60), np.float32)])
    finally:
        model.score_thresh = SMALL["score_thresh"]
    assert result["boxes"].shape == (0, 4) and result["labels"].dtype == np.int64
    assert models.architecture_of(run["tv_model"].state_dict()) == "retinanet_resnet50_fpn"
    with pytest.raises(ValueError, match="num_classes=91"):
        models.retinanet_resnet50_fpn(run["tv_model"].state_dict(), num_classes=2)
    with pytest.raises(ValueError, match="detections_per_img"):
        models.RetinaNet(models.fcos.resnet50_fpn_p3p7_backbone(), detections_per_img=0)


def test_demo_draws_anchors(tmp_path, capsys):
    from edudet.demo import main

    assert main(["--model", "retinanet", "--min-size", "64", "--out", str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    assert "RetinaNet" in out and "| head" in out and "| postprocess" in out
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"



def test_candidates_by_bands_equal_one_pick_with_ties(monkeypatch):
    # a level's best passing (anchor, class) pairs taken a band of feature rows at a time (1 row here) equal
    # one pick over the whole level: largest first, ties by lower index, the threshold strict
    from edudet.models import one_stage
    model = models.retinanet_resnet50_fpn(num_classes=3, seed=0, score_thresh=0.25, topk_candidates=5)
    logits = (np.random.default_rng(0).integers(-2, 3, (1, 9 * 3, 4, 5)) / 2).astype(np.float32)
    outputs = {"cls_logits": [logits], "bbox_regression": [np.zeros((1, 36, 4, 5), np.float32)]}
    whole = model.level_scores(outputs, 0, 0).reshape(-1)
    passing = np.flatnonzero(whole > np.float32(0.25))
    from edudet.models.rpn import top_n_descending
    expected = passing[top_n_descending(whole[passing], 5)]
    for chunk in (1, 50, 10**6):
        monkeypatch.setattr(one_stage, "_TOP_N_CHUNK", chunk)
        candidates, scores, num_classes = model._level_candidates(outputs, 0, 0)
        np.testing.assert_array_equal(candidates, expected)
        np.testing.assert_array_equal(scores, whole[expected])
        assert num_classes == 3
    assert list(expected) == sorted(expected, key=lambda i: (-whole[i], i))
