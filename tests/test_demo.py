"""``python -m edudet demo``: the generated image, and the whole run end to end in a temporary directory."""
import numpy as np
import pytest

from edudet.demo import COCO_CATEGORIES, main, sample_image


def test_sample_image():
    image = sample_image(120, 160, seed=0)
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, sample_image(120, 160, seed=0))  # seeded
    assert not np.array_equal(image, sample_image(120, 160, seed=1))
    # the shapes keep flat colours: red disc (0.85, 0.15, 0.15) * 255 -> (217, 38, 38), blue box
    # (0.15, 0.3, 0.85) * 255 -> (38, 76, 217) (76.5 rounds half to even)
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert (217, 38, 38) in colours and (38, 76, 217) in colours


@pytest.mark.parametrize("kwargs,match", [
    ({"height": np.nan}, "height"), ({"width": 2**64}, "width"), ({"seed": np.inf}, "seed"), ({"seed": -1}, "seed"),
    ({"height": 10**6, "width": 10**6}, "GiB"),
])
def test_sample_image_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_image(**kwargs)
    assert sample_image(np.array(8), np.int64(9), seed=np.array(2)).shape == (8, 9, 3)


def test_coco_categories():
    assert len(COCO_CATEGORIES) == 91 and COCO_CATEGORIES[1] == "person" and COCO_CATEGORIES[90] == "toothbrush"


def test_demo_default_is_the_shipped_detector(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--out", "demo/out.png"]) == 0
    out = capsys.readouterr().out
    assert "RANDOM" not in out and "weights shipped in edudet" in out
    # a generated shapes image with its ground truth, and how much of it the detections found
    assert "generated shapes image 0" in out and "ground-truth shapes found" in out
    for stage in ("transform", "backbone.fpn", "rpn.filter_proposals", "roi_heads.mask_head", "| total"):
        assert stage in out
    assert (tmp_path / "demo" / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_random_keeps_the_old_behaviour(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--random", "--min-size", "96", "--out", "demo/out.png"]) == 0
    out = capsys.readouterr().out
    assert "RANDOM weights" in out and "Faster R-CNN R50-FPN" in out
    for stage in ("transform", "backbone.fpn", "rpn.filter_proposals", "roi_heads.box_head", "| total"):
        assert stage in out
    assert "wrote" in out
    png = tmp_path / "demo" / "out.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_with_weights_file(tmp_path, capsys):
    import edudet.models as models

    weights = tmp_path / "w.npz"
    models.fasterrcnn_resnet50_fpn(seed=1, num_classes=4).save(weights)
    assert main(["--weights", str(weights), "--min-size", "64", "--out", str(tmp_path / "w.png"),
                 "--score-thresh", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "RANDOM" not in out and "loading weights" in out and "score > 0.2" in out
    assert (tmp_path / "w.png").exists()


def test_demo_bad_arguments():
    with pytest.raises(SystemExit):
        main(["--min-size", "8"])
    with pytest.raises(SystemExit):
        main(["--weights", "w.npz", "--random"])
    for argv in (["--max-size", "100000"], ["--seed", str(2**64)], ["--score-thresh", "nan"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2


# ---- issue 12: a bad file is one line naming it, exit code 2, no traceback ----------------------------------
def _assert_one_line_error(capsys, code, *expected):
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("edudet demo: ") and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


def _pth_file(path):
    """What torch.save writes: a zip archive with a data.pkl (made without torch)."""
    import pickle
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}))
    return path


@pytest.mark.parametrize("kind,reason", [
    ("missing", "does not exist"),
    ("junk", "not a zip archive"),
    ("empty", "it is empty"),
    ("truncated", "not a readable edudet .npz"),
    ("pth", "python -m edudet convert"),
])
def test_demo_bad_weights_file(tmp_path, capsys, kind, reason):
    path = tmp_path / ("w.pth" if kind == "pth" else "w.npz")
    if kind == "junk":
        path.write_bytes(b"\x00not weights" * 50)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        from edudet.models.light import SHAPES_WEIGHTS

        path.write_bytes(SHAPES_WEIGHTS.read_bytes()[:100_000])
    elif kind == "pth":
        _pth_file(path)
    code = main(["--weights", str(path), "--out", str(tmp_path / "o.png")])
    _assert_one_line_error(capsys, code, str(path), reason)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("kind,reason", [
    ("missing", "does not exist"),
    ("corrupt", "cannot be read as an image"),
    ("directory", "is not a file"),
])
def test_demo_bad_image_file(tmp_path, capsys, kind, reason):
    path = tmp_path / "picture.png"
    if kind == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    elif kind == "directory":
        path.mkdir()
    code = main(["--image", str(path), "--out", str(tmp_path / "o.png")])
    _assert_one_line_error(capsys, code, str(path), reason)


def test_demo_image_too_thin_is_one_line(tmp_path, capsys):
    import matplotlib.image

    path = tmp_path / "thin.png"
    matplotlib.image.imsave(path, np.zeros((1, 3000, 3), np.uint8))
    # the shapes model: s = min(256 / 1, 256 / 3000) = 0.0853 -> 0 x 256 pixels
    code = main(["--image", str(path), "--out", str(tmp_path / "o.png")])
    _assert_one_line_error(capsys, code, str(path), "images[0] of 1 x 3000 pixels would be resized to 0 x 256")


def test_demo_grey_image_is_accepted(tmp_path, capsys):
    import matplotlib.image
    from PIL import Image

    path = tmp_path / "grey.png"
    Image.fromarray(np.full((64, 80), 128, np.uint8), mode="L").save(path)
    assert matplotlib.image.imread(path).ndim == 2
    assert main(["--image", str(path), "--out", str(tmp_path / "o.png")]) == 0
    assert "64 x 80" in capsys.readouterr().out


def test_demo_model_must_match_weights(tmp_path, capsys):
    from edudet.models.light import SHAPES_WEIGHTS

    code = main(["--model", "fcos", "--weights", str(SHAPES_WEIGHTS), "--out", str(tmp_path / "o.png")])
    _assert_one_line_error(capsys, code, "--model fcos", "fcos_resnet50_fpn", "maskrcnn_resnet18_fpn",
                           str(SHAPES_WEIGHTS))
    assert not (tmp_path / "o.png").exists()


def test_demo_cli_bad_weights_has_no_traceback(tmp_path):
    import subprocess
    import sys

    path = _pth_file(tmp_path / "model.pth")
    result = subprocess.run([sys.executable, "-m", "edudet", "demo", "--weights", str(path),
                             "--out", str(tmp_path / "o.png")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"edudet demo: weights file '{path}' is not a readable edudet .npz: it is a PyTorch checkpoint: convert it "
        "first, `python -m edudet convert model.pth weights.npz`"]


# ---- the drawing helpers (edudet.viz) the demo and lessons share: integer arguments checked by name ----------
@pytest.mark.parametrize("call,match", [
    (lambda viz: viz.roi_align_sampling_points([0, 0, np.nan, 4], (2, 2)), "roi"),
    (lambda viz: viz.roi_align_sampling_points([0, 0, 4, 4], (np.nan, 2)), r"output_size\[0\]"),
    (lambda viz: viz.roi_align_sampling_points([0, 0, 4, 4], (2, 2**64)), r"output_size\[1\]"),
    (lambda viz: viz.roi_align_sampling_points([0, 0, 4, 4], (2, 2), sampling_ratio=10**6), "sampling_ratio"),
    (lambda viz: viz.roi_align_sampling_points([0, 0, 4, 4], (2, 2), spatial_scale=np.inf), "spatial_scale"),
    # a 1e12-pixel RoI in 2 bins: ceil(5e11) samples per bin per axis
    (lambda viz: viz.roi_align_sampling_points([0, 0, 1e12, 1e12], (2, 2)), "adaptive grid"),
    (lambda viz: viz.roi_pool_bins([0, 0, 4, 4], (2, 2), 1.0, (np.nan, 8)), r"feature_shape\[-2\]"),
    (lambda viz: viz.roi_pool_bins([0, 0, 4, 4], (10**6, 10**6), 1.0, (8, 8)), "GiB"),
    (lambda viz: viz.draw_feature_grid((2**64, 2)), r"feature_shape\[-2\]"),
])
def test_viz_arguments_are_checked_by_name(call, match):
    from edudet import viz

    with pytest.raises(ValueError, match=match):
        call(viz)


def test_viz_accepts_zero_d_arrays():
    from edudet import viz

    # a 4 x 4 RoI in 2 x 2 bins, 1 sample per bin: the bin centres 1 and 3 (+ 0.5 for pixel centres)
    _, _, points = viz.roi_align_sampling_points(np.array([0, 0, 4, 4]), (np.array(2), 2), np.float64(1.0),
                                                 np.array(1))
    np.testing.assert_allclose(points[..., 0].ravel(), [1.5, 3.5, 1.5, 3.5])
