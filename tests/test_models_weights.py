"""edudet.models weights: torchvision names, strict checks, .npz round trips, the convert command."""
import subprocess
import sys

import numpy as np
import pytest

import edudet.models as models
from edudet.models.convert import main as convert_main
from edudet.models.faster_rcnn import FasterRCNN, resnet50_fpn_backbone
from edudet.models.layers import Conv2d, FrozenBatchNorm2d
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
    conv.load_state({"weight": np.full((1, 1, 1, 1), 3.0)})
    FrozenBatchNorm2d(conv).load_state({"weight": [2.0], "bias": [1.0], "running_mean": [1.0],
                                        "running_var": [1.0 - 1e-5]})
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

    torch.save(tv_model, model_path)  # a whole model object: only read with the explicit opt-in
    assert convert_main([str(model_path), str(tmp_path / "out2.npz")]) == 2
    assert not (tmp_path / "out2.npz").exists()
    assert convert_main([str(model_path), str(tmp_path / "out2.npz"), "--trust-pickle"]) == 0
    assert set(models.load(tmp_path / "out2.npz").state_dict()) == set(expected)

    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    assert convert_main([str(tmp_path / "other.pth"), str(tmp_path / "bad.npz")]) == 1
    assert not (tmp_path / "bad.npz").exists()
    assert convert_main([str(tmp_path / "nothing.pth"), str(tmp_path / "bad.npz")]) == 2


def test_importing_models_imports_neither_torch_nor_numba():
    code = "import sys, edudet.models; print('torch' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ---- issue 12: safe loading, bad weights refused by name ---------------------------------------------------
_EVIL_CHECKPOINT = """
import torch
from edudet.models.convert import main

class Evil:  # unpickling this calls open(marker, "w"): any code could run the same way
    def __reduce__(self):
        return (open, ({marker!r}, "w"))

torch.save({{"conv.weight": torch.zeros(2), "payload": Evil()}}, {path!r})
print("saved")
"""


def test_convert_refuses_pickled_code_without_trust_pickle(tmp_path, capsys):
    torch, _ = import_torchvision()
    marker, path = tmp_path / "MARKER", tmp_path / "evil.pth"
    # written by a child interpreter, so that the class is not importable here
    subprocess.run([sys.executable, "-c", _EVIL_CHECKPOINT.format(marker=str(marker), path=str(path))], check=True,
                   capture_output=True)
    assert path.exists() and not marker.exists()
    assert convert_main([str(path), str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()  # the file's code never ran
    assert str(path) in err and "--trust-pickle" in err and "run code" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.npz").exists()
    # the opt-in reads it (and so runs its code, which is why it is opt-in); the payload holds no detector
    assert convert_main([str(path), str(tmp_path / "out.npz"), "--trust-pickle"]) == 1
    assert marker.exists()


@pytest.mark.parametrize("content,reason", [
    (b"", "it is empty"),
    (b"not a checkpoint at all" * 4, "corrupt, truncated or not a .pth"),
    ("truncated", "corrupt, truncated or not a .pth"),
])
def test_convert_unreadable_checkpoint_is_one_line(tmp_path, capsys, content, reason):
    torch, _ = import_torchvision()
    path = tmp_path / "bad.pth"
    if content == "truncated":
        torch.save({"a": torch.zeros(100)}, path)
        content = path.read_bytes()[:200]
    path.write_bytes(content)
    assert convert_main([str(path), str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and reason in err and "Traceback" not in err


def test_convert_bad_bn_eps_is_an_argument_error(tmp_path):
    with pytest.raises(SystemExit) as info:
        convert_main([str(tmp_path / "a.pth"), str(tmp_path / "b.npz"), "--bn-eps", "nan"])
    assert info.value.code == 2


def test_convert_cli_has_no_traceback(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "edudet", "convert", str(path), str(tmp_path / "o.npz")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"edudet convert: {path} is not a readable PyTorch checkpoint (corrupt, " \
                                    "truncated or not a .pth): it is empty"


def _light_state():
    return models.fasterrcnn_resnet18_fpn().state_dict()


@pytest.mark.parametrize("key,value,match", [
    ("backbone.body.conv1.weight", np.nan, "contains NaN or inf"),
    ("rpn.head.conv.0.0.bias", -np.inf, "contains NaN or inf"),
    ("roi_heads.box_head.fc6.bias", 1e300, "beyond float32's range"),  # float64: would become inf in float32
    ("backbone.body.bn1.running_var", -1.0, "running_var must be >= 0"),
])
def test_load_refuses_bad_weight_values_by_key(key, value, match):
    model = models.fasterrcnn_resnet18_fpn()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = {k: v.astype(np.float64) for k, v in before.items()}
    state[key][(0,) * state[key].ndim] = value
    with pytest.raises(ValueError, match=match) as info:
        model.load_state_dict(state)
    assert repr(key) in str(info.value)
    for k, v in model.state_dict().items():  # nothing was loaded
        np.testing.assert_array_equal(v, before[k])


def test_zero_variance_with_zero_eps_is_refused():
    # weight / sqrt(0 + 0) = inf: the folded conv would hold inf
    state = _light_state()
    state["backbone.body.layer1.0.bn2.running_var"] = np.zeros_like(state["backbone.body.layer1.0.bn2.running_var"])
    with pytest.raises(ValueError, match="'backbone.body.layer1.0.bn2.running_var'.*bn_eps=0"):
        models.fasterrcnn_resnet18_fpn(state, bn_eps=0)
    models.fasterrcnn_resnet18_fpn(state)  # with torchvision's eps 1e-5 the same weights are fine


def test_load_file_with_nan_weight_names_file_and_key(tmp_path):
    state = _light_state()
    state["roi_heads.box_predictor.cls_score.weight"][0, 0] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, **state)
    with pytest.raises(ValueError, match=r"nan\.npz.*'roi_heads\.box_predictor\.cls_score\.weight' contains NaN"):
        models.load(path)


@pytest.mark.parametrize("kind,match", [
    ("empty", "it is empty"),
    ("junk", "not a zip archive"),
    ("truncated", "not a readable edudet .npz"),
    ("npy", "single .npy array"),
    ("object", "pickled Python objects"),
    ("pth", "PyTorch checkpoint: convert it first"),
    ("pickle", "never loads pickles"),
    ("directory", "not a file"),
])
def test_load_corrupt_npz_names_the_file(tmp_path, kind, match):
    import pickle
    import zipfile

    path = tmp_path / "w.npz"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "junk":
        path.write_bytes(b"hello" * 20)
    elif kind == "truncated":
        models.fasterrcnn_resnet18_fpn().save(path)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "npy":
        with open(path, "wb") as handle:
            np.save(handle, np.zeros(3))
    elif kind == "object":
        with open(path, "wb") as handle:
            np.savez(handle, a=np.array([{"x": 1}], dtype=object))
    elif kind == "pth":  # what torch.save writes: a zip with a data.pkl (built here without torch)
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps({}))
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"a": 1}))
    else:
        path.mkdir()
    with pytest.raises(ValueError, match=match) as info:
        models.load(path)
    assert str(path) in str(info.value) and len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("seed", [np.nan, -1, 2**64, 1.5, "0"])
def test_builder_seed_is_checked_by_name(seed):
    with pytest.raises((TypeError, ValueError), match="seed"):
        models.fasterrcnn_resnet18_fpn(seed=seed)


@pytest.mark.parametrize("keyword,value", [
    ("num_classes", np.nan), ("num_classes", 2**64), ("box_detections_per_img", np.inf),
    ("min_size", np.nan), ("max_size", 2**64), ("rpn_pre_nms_top_n_test", 0.5), ("mask_dim_reduced", np.nan),
    ("representation_size", float("inf")),
])
def test_builder_integer_arguments_are_checked_by_name(keyword, value):
    with pytest.raises(ValueError, match=keyword):
        models.maskrcnn_resnet18_fpn(**{keyword: value})


def test_zero_d_arrays_are_unwrapped_and_saved_as_numbers(tmp_path):
    model = models.fasterrcnn_resnet18_fpn(num_classes=np.array(3), box_detections_per_img=np.array(7),
                                           min_size=np.array(128), max_size=np.int64(160))
    assert model.config["box_detections_per_img"] == 7 and model.transform.min_size == 128
    loaded = models.load(model.save(tmp_path / "m.npz"))  # the JSON config holds plain ints
    assert loaded.num_classes == 3 and loaded.config["max_size"] == 160
