"""edudet.models' architecture: Detector -> TwoStageDetector / OneStageDetector, declared strides, parameters
declared once, `architecture` derived in one place, and a newcomer's detector added by a head and a builder."""
import ast
import inspect
import textwrap
from pathlib import Path

import numpy as np
import pytest

import edudet.models as models
from edudet.anchors import AnchorGenerator
from edudet.models import layers
from edudet.models.detector import Detector, TwoStageDetector
from edudet.models.faster_rcnn import FasterRCNN, resnet50_fpn_backbone
from edudet.models.fcos import FCOS, resnet50_fpn_p3p7_backbone
from edudet.models.light import resnet18_fpn_backbone
from edudet.models.mask_rcnn import MaskRCNN
from edudet.models.one_stage import OneStageDetector
from edudet.models.retinanet import RetinaNet
from edudet.models.weights import StateModule

MODELS_DIR = Path(models.__file__).parent


def test_two_kinds_are_siblings():
    assert issubclass(TwoStageDetector, Detector) and issubclass(OneStageDetector, Detector)
    assert not issubclass(OneStageDetector, TwoStageDetector)  # no rpn=None, roi_heads=None any more
    assert not hasattr(OneStageDetector, "features_by_name") and not hasattr(TwoStageDetector, "features_by_name")
    assert models.GeneralizedRCNN is TwoStageDetector  # torchvision's name still works


def test_backbones_declare_names_and_strides():
    assert resnet50_fpn_backbone().out_names == ["0", "1", "2", "3", "pool"]
    assert resnet50_fpn_backbone().strides == [4, 8, 16, 32, 64]
    assert resnet50_fpn_p3p7_backbone().out_names == ["0", "1", "2", "p6", "p7"]
    assert resnet50_fpn_p3p7_backbone().strides == [8, 16, 32, 64, 128]
    assert resnet18_fpn_backbone().out_names == ["0", "1", "2", "pool"]
    assert resnet18_fpn_backbone().strides == [4, 8, 16, 32]


def test_architecture_is_derived_from_kind_and_backbone():
    built = {"fasterrcnn_resnet50_fpn": FasterRCNN(resnet50_fpn_backbone()),
             "maskrcnn_resnet50_fpn": MaskRCNN(resnet50_fpn_backbone()),
             "retinanet_resnet50_fpn": RetinaNet(resnet50_fpn_p3p7_backbone()),
             "fcos_resnet50_fpn": FCOS(resnet50_fpn_p3p7_backbone()),
             "fasterrcnn_resnet18_fpn": FasterRCNN(resnet18_fpn_backbone(), anchor_sizes=[[16], [32], [64], [128]]),
             "maskrcnn_resnet18_fpn": MaskRCNN(resnet18_fpn_backbone(), anchor_sizes=[[16], [32], [64], [128]])}
    # the zoo's builders: MobileNetV3 (two names, one backbone with its own name each) and the v2 recipes
    for name in ("fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn",
                 "fasterrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2"):
        built[name] = getattr(models, name)()
    for name, model in built.items():
        assert model.architecture == name
        assert models.ARCHITECTURES[name][1] is type(model)
        assert "architecture" not in type(model).__dict__  # never a class attribute to shadow
    assert sorted(built) == sorted(models.ARCHITECTURES)


def test_num_classes_of_reads_the_anchors_from_the_weights():
    # a RetinaNet with 3 anchors per location (not torchvision's 9) and 5 classes: cls_logits has 15 rows,
    # bbox_reg 12; the old rule (rows // 9) read 1 class
    sizes = ((32,), (64,), (128,), (256,), (512,))
    model = RetinaNet(resnet50_fpn_p3p7_backbone(), num_classes=5,
                      anchor_generator=AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5))
    shapes = model.state_shapes()
    state = {k: np.zeros(shapes[k], np.float32) for k in ("head.classification_head.cls_logits.weight",
                                                          "head.regression_head.bbox_reg.weight")}
    assert shapes["head.classification_head.cls_logits.weight"][0] == 15
    assert models.num_classes_of(state, "retinanet_resnet50_fpn") == 5
    state["head.regression_head.bbox_reg.weight"] = np.zeros((4, 256, 3, 3), np.float32)  # one anchor: FCOS-like
    assert models.num_classes_of(state, "retinanet_resnet50_fpn") == 15
    assert models.num_classes_of({}, "fcos_resnet50_fpn") is None


def _modules_classes():
    import importlib
    for path in sorted(MODELS_DIR.glob("*.py")):
        module = importlib.import_module(f"edudet.models.{path.stem}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                yield cls


def test_parameters_are_declared_once():
    """Only the layers name their own tensors; every StateModule lists its parts in `children` alone."""
    for cls in _modules_classes():
        if issubclass(cls, StateModule) and cls is not StateModule:
            overridden = {"state_shapes", "load_state"} & set(cls.__dict__)
            assert not overridden, f"{cls.__name__} overrides {overridden}: declare its parts in children()"
    for layer in (layers.Conv2d(2, 3, 3), layers.Linear(4, 5), layers.GroupNorm(1, 2), layers.ConvTranspose2d(2, 3, 2),
                  layers.FrozenBatchNorm2d(layers.Conv2d(2, 3, 1, bias=False))):
        keys = layer.state_shapes()
        layer.load_state({k: np.ones(s) for k, s in keys.items()})  # loads exactly what it declares


def test_frozen_batch_norm_folds_after_its_conv():
    # conv weight 2 (no bias), BN weight 3, bias 1, mean 0.5, var 4 - eps: y = 3 (2 x - 0.5) / 2 + 1 = 3 x + 0.25
    conv = layers.Conv2d(1, 1, 1, bias=False)
    block = StateModule()
    block.children = lambda: {"conv": conv, "bn": layers.FrozenBatchNorm2d(conv)}
    assert list(block.state_shapes()) == ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]
    block.load_state({"conv.weight": np.full((1, 1, 1, 1), 2.0), "bn.weight": [3.0], "bn.bias": [1.0],
                      "bn.running_mean": [0.5], "bn.running_var": [4.0 - 1e-5]})
    np.testing.assert_allclose(conv(np.array([[[[0.0, 1.0]]]], np.float32))[0, 0, 0], [0.25, 3.25], rtol=1e-6)


# allowed function-local imports: optional torch / torchvision, one that breaks a real cycle, and the Numba
# group norm and Winograd transforms loaded on first use (importing numba with edudet.models would slow
# `import edudet.models`)
_LOCAL_IMPORTS_ALLOWED = {("light.py", "."), ("light.py", "torch"), ("convert.py", "torch"),
                          ("layers.py", "..kernels"), ("winograd.py", "..kernels")}


def test_no_function_local_imports_without_a_reason():
    for path in sorted(MODELS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    roots = [alias.name.split(".")[0] for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    roots = ["." * node.level + (node.module or "").split(".")[0] if node.level else
                             node.module.split(".")[0]]
                    roots = [r if not r.startswith(".") or r.strip(".") else "." for r in roots]
                else:
                    continue
                for root in roots:
                    allowed = (path.name, root) in _LOCAL_IMPORTS_ALLOWED or root == "torchvision"
                    assert allowed, f"{path.name}:{node.lineno} imports {root} inside {function.name}"


def test_anchor_sizes_are_checked_against_declared_strides():
    with pytest.raises(ValueError, match="level 0 has sizes .* backbone declares stride 8"):
        FCOS(resnet50_fpn_p3p7_backbone(),
             anchor_generator=AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((1.0,),) * 5))
    with pytest.raises(ValueError, match="describes 4 levels but the backbone has 5"):
        RetinaNet(resnet50_fpn_p3p7_backbone(), anchor_generator=AnchorGenerator(((32,),) * 4, ((1.0,),) * 4))
    # RetinaNet sizes for P2 (4 px apart) on a P3 level (8 px apart)
    with pytest.raises(ValueError, match="size 4 below the backbone's stride 8"):
        RetinaNet(resnet50_fpn_p3p7_backbone(),
                  anchor_generator=AnchorGenerator(((4,), (16,), (32,), (64,), (128,)), ((1.0,),) * 5))
    with pytest.raises(ValueError, match="anchor_sizes level 1 has an anchor of size 4 below the backbone's stride 8"):
        FasterRCNN(resnet50_fpn_backbone(), anchor_sizes=[[32], [4], [128], [256], [512]])


def test_declared_strides_are_checked_on_every_call():
    model = models.fasterrcnn_resnet18_fpn(min_size=64, max_size=64)
    image = np.zeros((64, 64, 3), np.uint8)
    assert model([image])[0]["boxes"].shape[1] == 4
    model.backbone.strides = [8, 16, 32, 64]  # a backbone that lies about its strides
    with pytest.raises(ValueError, match="stride mismatch at level 0: stride 8"):
        model([image])


def test_thin_images_still_run():
    # 40 x 1300 -> 41 x 1333 resized, padded to 64 x 1344: torchvision's pooler estimate (2 ** round(log2(16 / 41)),
    # stride 2 for P2) disagrees with the declared 4; the model must still run, as before
    model = models.fasterrcnn_resnet18_fpn(min_size=256, max_size=1333)
    assert model([np.zeros((40, 1300, 3), np.uint8)])[0]["boxes"].shape[1] == 4


def _docstring_example() -> str:
    doc = models.__doc__
    start = doc.index("backbone::") + len("backbone::")
    end = doc.index("A two-stage detector subclasses")
    return textwrap.dedent(doc[start:end])


def test_a_newcomers_detector_is_a_head_and_a_builder(tmp_path):
    namespace = {}
    exec(compile(_docstring_example(), "edudet.models docstring", "exec"), namespace)
    try:
        model = namespace["tiny_resnet50_fpn"](num_classes=3, min_size=64, max_size=64, score_thresh=0.0)
        assert model.architecture == "tiny_resnet50_fpn"
        assert sorted(model.state_shapes())[-4:] == ["head.classification_head.cls_logits.bias",
                                                     "head.classification_head.cls_logits.weight",
                                                     "head.regression_head.bbox_reg.bias",
                                                     "head.regression_head.bbox_reg.weight"]
        image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
        detections, recorded = model([image], trace=True)
        assert detections[0]["boxes"].shape == (100, 4) and set(detections[0]["labels"]) <= {0, 1, 2}
        assert [name for name in ("head", "anchors", "postprocess") if name in [s.name for s in recorded.stages]]
        path = model.save(tmp_path / "tiny.npz")
        loaded = models.load(path)
        assert type(loaded).__name__ == "Tiny" and loaded.num_classes == 3
        again = loaded([image])[0]
        np.testing.assert_array_equal(again["boxes"], detections[0]["boxes"])
    finally:
        models.ARCHITECTURES.pop("tiny_resnet50_fpn", None)

