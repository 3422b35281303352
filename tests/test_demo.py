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
    with pytest.raises(FileNotFoundError):
        main(["--weights", "/nonexistent/weights.npz"])
    with pytest.raises(SystemExit):
        main(["--weights", "w.npz", "--random"])
