"""edudet.models weights: torchvision names, strict checks, .npz round trips, the convert command."""
import subprocess
import sys

import numpy as np
import pytest

import edudet.models as models
from edudet.models.convert import main as convert_main
from edudet.models.faster_rcnn import FasterRCNN, resnet50_fpn_backbone
from edudet.models.layers import Conv2d
from edudet.models.weights import load_conv_bn
from tests.helpers import import_torchvision


def _skeleton(num_classes=91, **kwargs):
    return FasterRCNN(resnet50_fpn_backbone(), num_classes=num_classes, **kwargs)


def _zeros(model):
    return {k: np.zeros(s, np.float32) for k, s in model.state_shapes().items()}


def test_expected_keys_hand():
    shapes = _skeleton().state_shapes()
    # ResNet-50: 53 convs (1 stem + 16 blocks x 3 + 4 downsamples) with a 4-entry batch norm each = 265;
    # FPN 8 convs x 2; RPN head 3 x 2; box head 2 x 2; predictor 2 x 2 -> 265 + 16 + 6 + 4 + 4 = 295
    assert len(shapes) == 295
    assert shapes["backbone.body.layer2.0.conv2.weight"] == (128, 128, 3, 3)  # the stride sits on the 3x3
    assert shapes["roi_heads.box_head.fc6.weight"] == (1024, 256 * 7 * 7)
    assert shapes["roi_heads.box_predictor.bbox_pred.weight"] == (91 * 4, 1024)
    assert shapes["rpn.head.conv.0.0.weight"] == (256, 256, 3, 3)


def test_batch_norm_is_folded_hand():
    # 1x1 conv weight 3; BN weight 2, bias 1, mean 1, var 1 - eps: y = 2 (3x - 1) / 1 + 1 = 6x - 1
    conv = Conv2d(1, 1, 1, bias=False)
    state = {"c.weight": np.full((1, 1, 1, 1), 3.0), "bn.weight": [2.0], "bn.bias": [1.0], "bn.running_mean": [1.0],
             "bn.running_var": [1.0 - 1e-5]}
    load_conv_bn(conv, state, "c", "bn")
    np.testing.assert_allclose(conv(np.array([[[[0.0, 1.0]]]], np.float32))[0, 0, 0], [-1.0, 5.0], rtol=1e-6)


def test_strict_errors_list_every_problem():
    model = _skeleton()
    state = _zeros(model)
    del state["backbone.body.conv1.weight"]
    state["backbone.body.fc.weight"] = np.zeros((1000, 2048), np.float32)
    state["rpn.head.cls_logits.weight"] = np.zeros((9, 256, 1, 1), np.float32)
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "1 missing: backbone.body.conv1.weight" in message
    assert "1 unexpected: backbone.body.fc.weight" in message
    assert "rpn.head.cls_logits.weight: got (9, 256, 1, 1), expected (3, 256, 1, 1)" in message


def test_weights_for_another_num_classes():
    state = _zeros(_skeleton(91))
    with pytest.raises(ValueError, match="weights are for num_classes=91 but the model was built with num_classes=3"):
        _skeleton(3).load_state_dict(state)


def test_non_strict_ignores_unexpected():
    model = _skeleton()
    state = _zeros(model)
    state["extra.thing"] = np.zeros(3, np.float32)
    model.load_state_dict(state, strict=False)
    assert "extra.thing" not in model.state_dict()


def test_frozen_bn_keys_and_legacy_names_are_accepted():
    model = _skeleton()
    state = _zeros(model)
    # BatchNorm2d's counters (dropped) and torchvision < 0.13 names (renamed)
    state["backbone.body.bn1.num_batches_tracked"] = np.array(0)
    state["backbone.fpn.inner_blocks.0.weight"] = state.pop("backbone.fpn.inner_blocks.0.0.weight")
    state["rpn.head.conv.weight"] = state.pop("rpn.head.conv.0.0.weight")
    model.load_state_dict(state)
    assert "rpn.head.conv.0.0.weight" in model.state_dict()


def test_bad_state_types():
    with pytest.raises(TypeError, match="mapping"):
        _skeleton().load_state_dict([("a", 1)])
    with pytest.raises(TypeError, match="weights must be"):
        models.fasterrcnn_resnet50_fpn(weights=3)


def test_npz_round_trip(tmp_path):
    model = _skeleton(5, box_score_thresh=0.25)
    state = _zeros(model)
    state["roi_heads.box_predictor.cls_score.bias"] = np.arange(5, dtype=np.float32)
    model.load_state_dict(state)
    path = model.save(tmp_path / "m.weights")  # any suffix is kept as given
    assert path.exists() and path.name == "m.weights"
    loaded = models.load(path)
    assert loaded.num_classes == 5 and loaded.roi_heads.score_thresh == 0.25
    np.testing.assert_array_equal(loaded.state_dict()["roi_heads.box_predictor.cls_score.bias"], np.arange(5))
    assert set(loaded.state_dict()) == set(state)
    assert models.load(path, box_score_thresh=0.5).roi_heads.score_thresh == 0.5
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.load(tmp_path / "missing.npz")


def test_state_shapes_match_torchvision_and_convert(tmp_path):
    torch, torchvision = import_torchvision()
    torch.manual_seed(0)
    tv_model = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                                                    num_classes=5).eval()
    tv_state = tv_model.state_dict()
    expected = {k: tuple(v.shape) for k, v in tv_state.items() if not k.endswith("num_batches_tracked")}
    assert _skeleton(5).state_shapes() == expected

    state_path, model_path, out = tmp_path / "sd.pth", tmp_path / "full.pth", tmp_path / "out.npz"
    torch.save(tv_state, state_path)
    assert convert_main([str(state_path), str(out)]) == 0
    converted = models.load(out)
    assert converted.num_classes == 5
    for key, value in converted.state_dict().items():
        np.testing.assert_array_equal(value, tv_state[key].numpy(), err_msg=key)

    torch.save(tv_model, model_path)  # a whole model object
    assert convert_main([str(model_path), str(tmp_path / "out2.npz")]) == 0
    assert set(models.load(tmp_path / "out2.npz").state_dict()) == set(expected)

    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    assert convert_main([str(tmp_path / "other.pth"), str(tmp_path / "bad.npz")]) == 1
    assert not (tmp_path / "bad.npz").exists()
    assert convert_main([str(tmp_path / "nothing.pth"), str(tmp_path / "bad.npz")]) == 2


def test_importing_models_imports_neither_torch_nor_numba():
    code = "import sys, edudet.models; print('torch' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
