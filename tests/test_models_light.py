"""The light ResNet-18-FPN detectors and the shipped shapes weights.

Three kinds of checks: hand cases (a basic block's arithmetic, the architecture's key layout), parity with
the torchvision twin (`edudet.models.light.torchvision_model`) on random weights and on the shipped ones,
and the shipped model's recorded accuracy, reproduced through edudet's NumPy forward pass.
"""
import json

import numpy as np
import pytest

import edudet.models as models
from edudet.data import CLASSES, ShapesDataset
from edudet.eval import mean_average_precision
from edudet.models.convert import main as convert_main
from edudet.models.light import SHAPES_WEIGHTS, torchvision_model
from edudet.models.resnet import BasicBlock, resnet18_body
from tests.model_parity import assert_top_detections_match, matched_detections, randomise_norms
from tests.helpers import import_torchvision


def _identity_bn(channels):
    return {"weight": np.ones(channels), "bias": np.zeros(channels), "running_mean": np.zeros(channels),
            "running_var": np.ones(channels) - 1e-5}  # var + eps = 1: the norm is the identity


# hand cases -----------------------------------------------------------------------------------------------
def test_basic_block_by_hand():
    # one channel, both convs the 3x3 kernel with a single 1 in the centre (the identity) and identity
    # norms: out = relu(relu(x) + x). x = [[-1, 2]] -> relu(x) = [[0, 2]] -> + x = [[-1, 4]] -> [[0, 4]]
    block = BasicBlock(1, 1)
    centre = np.zeros((1, 1, 3, 3))
    centre[0, 0, 1, 1] = 1
    state = {"conv1.weight": centre, "conv2.weight": centre}
    for bn in ("bn1", "bn2"):
        state.update({f"{bn}.{k}": v for k, v in _identity_bn(1).items()})
    block.load_state(state)
    out = block(np.array([[[[-1.0, 2.0]]]], np.float32))
    np.testing.assert_allclose(out, [[[[0.0, 4.0]]]], atol=1e-6)


def test_resnet18_layout():
    body = resnet18_body((1, 2, 3))
    assert body.out_channels == [64, 128, 256]
    keys = body.state_shapes()
    # layer4 is neither built nor weighted when C5 is not returned (as torchvision's IntermediateLayerGetter)
    assert not any(k.startswith("layer4") for k in keys)
    # the first block of layer2 halves the size: 3x3 stride-2 conv and a 1x1 stride-2 projection shortcut
    assert keys["layer2.0.conv1.weight"] == (128, 64, 3, 3) and keys["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert "layer1.0.downsample.0.weight" not in keys  # 64 -> 64 at stride 1 keeps the identity shortcut
    # 1 stem conv + 3 stages x 2 blocks x 2 convs + 2 projections = 15 convs, each with a norm (5 arrays)
    assert len(keys) == 15 * 5
    x = np.zeros((1, 3, 64, 96), np.float32)
    body.load_state({k: np.ones(v) if k.endswith("var") else np.zeros(v) for k, v in keys.items()})
    assert [c.shape for c in body(x)] == [(1, 64, 16, 24), (1, 128, 8, 12), (1, 256, 4, 6)]


def test_resnet18_body_matches_torchvision_with_either_eps():
    # torchvision runs its COCO_V1 R-CNN weights with FrozenBatchNorm2d eps 0 (overwrite_eps); tiny running
    # variances make eps matter: 1e-5 against var 1e-4 changes each scale by ~5%
    torch, torchvision = import_torchvision()
    from torchvision.ops.misc import FrozenBatchNorm2d

    torch.manual_seed(0)
    net = torchvision.models.resnet18(norm_layer=FrozenBatchNorm2d).eval()
    generator = torch.Generator().manual_seed(2)
    for module in net.modules():
        if isinstance(module, FrozenBatchNorm2d):
            n = module.weight.shape[0]
            module.running_var.copy_(torch.rand(n, generator=generator) * 1e-4 + 1e-5)
            module.weight.copy_(torch.rand(n, generator=generator) * 1e-2)
            module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    state = {k: v.numpy() for k, v in net.state_dict().items() if not k.startswith("fc.")}
    for eps in (1e-5, 0.0):
        for module in net.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.eps = eps
        with torch.no_grad():
            expected = net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(torch.from_numpy(x)))))))
        body = resnet18_body((1, 2), bn_eps=eps)
        body.load_state({k: v for k, v in state.items() if k.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")})
        got = body(x)[-1]
        np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-4 * np.abs(expected.numpy()).max(),
                                   err_msg=f"eps {eps}")
    wrong = resnet18_body((1, 2), bn_eps=1e-5)  # eps 1e-5 on weights meant for 0: visibly different
    wrong.load_state({k: v for k, v in state.items() if k.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")})
    assert np.abs(wrong(x)[-1] - expected.numpy()).max() > 1e-2 * np.abs(expected.numpy()).max()


def test_bn_eps_is_kept_by_save_and_convert(tmp_path):
    model = models.fasterrcnn_resnet18_fpn(seed=0, bn_eps=0)
    assert model.config["bn_eps"] == 0 and "bn_eps" not in models.fasterrcnn_resnet18_fpn().config
    assert models.load(model.save(tmp_path / "m.npz")).backbone.body.bn_eps == 0
    with pytest.raises(ValueError, match="bn_eps"):
        models.fasterrcnn_resnet50_fpn(bn_eps=-1)


def test_light_model_config_round_trips(tmp_path):
    model = models.maskrcnn_resnet18_fpn(seed=3, box_score_thresh=0.25)
    assert model.architecture == "maskrcnn_resnet18_fpn"
    assert model.config["anchor_sizes"] == [[16], [32], [64], [128]] and model.config["min_size"] == 256
    path = model.save(tmp_path / "light.npz")
    loaded = models.load(path)
    assert loaded.architecture == "maskrcnn_resnet18_fpn" and loaded.roi_heads.score_thresh == 0.25
    assert loaded.config == model.config
    assert models.architecture_of(loaded.state_dict()) == "maskrcnn_resnet18_fpn"
    faster = {k: v for k, v in loaded.state_dict().items() if "mask" not in k}
    assert models.architecture_of(faster) == "fasterrcnn_resnet18_fpn"
    with pytest.raises(ValueError, match="anchor_sizes must have one entry per FPN level"):
        models.fasterrcnn_resnet18_fpn(anchor_sizes=[[16], [32]])


def test_half_precision_save(tmp_path):
    model = models.fasterrcnn_resnet18_fpn(seed=1)
    full, half = model.save(tmp_path / "full.npz"), model.save(tmp_path / "half.npz", half=True)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    with np.load(half) as data:
        assert data["backbone.body.conv1.weight"].dtype == np.float16  # a matrix: halved
        assert data["backbone.body.bn1.running_var"].dtype == np.float32  # a vector: kept
    loaded = models.load(half).state_dict()
    weight = model.state_dict()["roi_heads.box_head.fc6.weight"]
    assert loaded["roi_heads.box_head.fc6.weight"].dtype == np.float32
    np.testing.assert_array_equal(loaded["roi_heads.box_head.fc6.weight"], weight.astype(np.float16))
    model._state["roi_heads.box_head.fc6.weight"] = np.full_like(weight, 1e5)  # beyond float16's 65504
    with pytest.raises(ValueError, match="float16's range"):
        model.save(tmp_path / "bad.npz", half=True)


# parity with the torchvision twin, random weights ------------------------------------------------------------
@pytest.fixture(scope="module")
def twin():
    torch, _ = import_torchvision()
    torch.manual_seed(0)
    tv_model = torchvision_model("maskrcnn_resnet18_fpn", box_score_thresh=0.0).eval()
    randomise_norms(tv_model, torch)
    return torch, tv_model


def _as_tensor(torch, image):
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def test_state_shapes_match_the_torchvision_twin(twin):
    _, tv_model = twin
    expected = {k: tuple(v.shape) for k, v in tv_model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert models.maskrcnn_resnet18_fpn().state_shapes() == expected


def test_random_weights_match_torchvision(twin):
    torch, tv_model = twin
    model = models.maskrcnn_resnet18_fpn(tv_model.state_dict(), box_score_thresh=0.0)
    image, _ = ShapesDataset(1, seed=11)[0]
    tensor = _as_tensor(torch, image)
    with torch.no_grad():
        features = tv_model.backbone(tv_model.transform([tensor])[0].tensors)
        theirs = {k: v.numpy() for k, v in tv_model([tensor])[0].items()}
    with models.trace(keep_arrays=True) as recorded:
        ours = model([image])[0]
    assert list(features) == ["0", "1", "2", "pool"]
    for name, theirs_level in features.items():
        ours_level = recorded["backbone.fpn"].arrays[f"P[{name}]"]
        np.testing.assert_allclose(ours_level, theirs_level.numpy(), rtol=0,
                                   atol=2e-5 * np.abs(theirs_level.numpy()).max(), err_msg=f"level {name}")
    for i, j in assert_top_detections_match(ours, theirs):
        np.testing.assert_allclose(ours["masks"][j], theirs["masks"][i], rtol=0, atol=2e-3)


def test_convert_recognises_the_light_model(twin, tmp_path):
    torch, tv_model = twin
    torch.save(tv_model.state_dict(), tmp_path / "light.pth")
    assert convert_main([str(tmp_path / "light.pth"), str(tmp_path / "light.npz"), "--half", "--bn-eps", "0"]) == 0
    loaded = models.load(tmp_path / "light.npz")
    assert loaded.architecture == "maskrcnn_resnet18_fpn" and loaded.num_classes == 4
    assert loaded.backbone.body.bn_eps == 0
    with np.load(tmp_path / "light.npz") as data:
        assert data["roi_heads.box_head.fc6.weight"].dtype == np.float16
    # an edudet file back into the torchvision twin: same arrays; a Faster R-CNN file lacks the mask branch
    back = torchvision_model("maskrcnn_resnet18_fpn", weights=tmp_path / "light.npz").state_dict()
    np.testing.assert_array_equal(back["roi_heads.box_head.fc6.weight"].numpy(),
                                  loaded.state_dict()["roi_heads.box_head.fc6.weight"])
    models.fasterrcnn_resnet18_fpn().save(tmp_path / "faster.npz")
    with pytest.raises(ValueError, match="missing .*mask_head"):
        torchvision_model("maskrcnn_resnet18_fpn", weights=tmp_path / "faster.npz")


# the shipped weights ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    """The shipped model's record, the evaluation images and edudet's detections of them."""
    record = models.shapes_record()
    evaluation = record["evaluation"]
    dataset = ShapesDataset(evaluation["images"], record["image_size"], seed=evaluation["data_seed"])
    model = models.shapes_detector()
    images, targets = zip(*(dataset[i] for i in range(len(dataset))))
    detections = [model([image])[0] for image in images]
    return dict(record=record, model=model, images=images, targets=targets, detections=detections)


def test_shipped_files():
    assert SHAPES_WEIGHTS.exists() and SHAPES_WEIGHTS.stat().st_size < 10 * 2 ** 20
    record = json.loads(SHAPES_WEIGHTS.with_suffix(".json").read_text())
    assert record["architecture"] == "maskrcnn_resnet18_fpn" and record["classes"] == list(CLASSES)
    for key in ("data_seed", "steps", "batch_size", "images"):
        assert key in record["training"]
    assert record["evaluation"]["images"] == 50
    # the evaluation images are not training images: another data seed
    assert record["evaluation"]["data_seed"] != record["training"]["data_seed"]


def test_shipped_model_reaches_its_recorded_map(shipped):
    record = shipped["record"]["evaluation"]["edudet"]
    truths = [{"boxes": t["boxes"], "labels": t["labels"]} for t in shipped["targets"]]
    stats = mean_average_precision(shipped["detections"], truths)
    assert abs(stats["AP"] - record["AP"]) <= 0.01 and abs(stats["AP50"] - record["AP50"]) <= 0.01
    assert stats["AP50"] >= 0.9  # the target


def test_shipped_masks_cover_the_shapes(shipped):
    # mask IoU of each confident detection with the best ground-truth mask of its class: mostly exact shapes
    ious = []
    for detections, target in zip(shipped["detections"][:10], shipped["targets"][:10]):
        for mask, label, score in zip(detections["masks"][:, 0], detections["labels"], detections["scores"]):
            if score < 0.5:
                continue
            binary = mask > 0.5
            same = target["masks"][target["labels"] == label].astype(bool)
            if len(same):
                inter = (same & binary).sum(axis=(1, 2))
                union = (same | binary).sum(axis=(1, 2))
                ious.append((inter / np.maximum(union, 1)).max())
    assert len(ious) >= 30 and np.median(ious) > 0.8


def test_shipped_weights_match_torchvision(shipped):
    torch, _ = import_torchvision()
    tv_model = torchvision_model("maskrcnn_resnet18_fpn", weights=SHAPES_WEIGHTS).eval()
    matched = total = 0
    with torch.no_grad():
        for image, ours in zip(shipped["images"][:10], shipped["detections"][:10]):
            theirs = {k: v.numpy() for k, v in tv_model([_as_tensor(torch, image)])[0].items()}
            top = min(30, len(theirs["boxes"]))
            matched += len(matched_detections(ours, theirs, top))
            total += top
    # the parity rule of the ResNet-50 models: 90% of torchvision's top 30 reproduced (IoU > 0.99, same label,
    # score within 1e-3), here over the first 10 evaluation images
    assert total >= 50 and matched >= 0.9 * total, f"{matched} of {total} detections matched"
