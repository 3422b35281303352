"""Batches: several images in one call give each image the detections it gets alone.

After the backbone every stage of a two-stage detector treats the images of a batch as independent: the RPN
filters all images at once (one decode, one clip to each image's own size, one NMS whose categories are
(image, level) pairs), the poolers pool every image's boxes in one call, the box head's post-processing runs
one NMS over (image, class) categories. Given the same inputs those stages give every image exactly (bit for
bit) what it gets alone; the tests below check that stage by stage. The whole forward pass agrees within
float32 rounding only: the 3x3 convolutions and the box head's matrix product run over the whole batch, and
BLAS sums in another order for another matrix shape (measured: boxes within 3e-5 px, scores within 2e-6).
Same-sized images are used (or images padded to the same size): images of different padded sizes change
each other's padding, in torchvision too.
"""
import numpy as np
import pytest

import edudet.models as models
from edudet import AnchorGenerator
from edudet.box_coder import BoxCoder
from edudet.data import ShapesDataset
from edudet.ops import batched_nms, clip_boxes_to_image, remove_small_boxes
from edudet.models.layers import softmax
from edudet.models.rpn import top_n_descending


@pytest.fixture(scope="module")
def shapes():
    model = models.shapes_detector()
    dataset = ShapesDataset(3, seed=2)
    images = [dataset[i][0] for i in range(3)]
    # 250 x 256 stays 250 x 256 (min_size = max_size = 256, scale 1) and is padded to 256 x 256 alone too, so
    # every image sees the same padding in the batch and alone; its boxes are clipped to 250 rows
    images[2] = np.ascontiguousarray(images[2][:250])
    batch, image_sizes, _ = model.transform(images)
    features = model.backbone.fpn(model.backbone.body(batch))
    return dict(model=model, images=images, batch=batch, image_sizes=image_sizes, features=features)


def _image(features: dict, i: int) -> dict:
    return {name: np.ascontiguousarray(level[i: i + 1]) for name, level in features.items()}


# hand cases -----------------------------------------------------------------------------------------------
def test_top_n_descending_per_row_by_hand():
    scores = np.array([[1.0, 3.0, 3.0, 2.0],
                       [0.0, 0.0, 5.0, 0.0]], np.float32)
    # row 0: the two 3s, the lower index first; row 1: the 5, then the first of the equal 0s
    np.testing.assert_array_equal(top_n_descending(scores, 2), [[1, 2], [2, 0]])
    np.testing.assert_array_equal(top_n_descending(scores, 4), [[1, 2, 3, 0], [2, 0, 1, 3]])  # n >= M: all
    np.testing.assert_array_equal(top_n_descending(scores[0], 3), [1, 2, 3])  # one row, as before


def test_anchor_cache_gives_the_same_read_only_anchors_once_per_size():
    generator = AnchorGenerator(((32,), (64,)), ((0.5, 1.0, 2.0),) * 2)
    shapes = [(8, 12), (4, 6)]
    first = generator.cached((64, 96), shapes)
    np.testing.assert_array_equal(first, generator((64, 96), shapes))
    assert first.shape == (3 * (8 * 12 + 4 * 6), 4) and not first.flags.writeable
    assert generator.cached((64, 96), [(1, 256, 8, 12), (1, 256, 4, 6)]) is first  # (N, C, h, w) shapes too
    other = generator.cached((32, 48), [(4, 6), (2, 3)])
    assert other is not first and other.shape == (3 * (24 + 6), 4)
    for size in range(8):  # the cache keeps the newest _CACHE_SIZE sizes
        generator.cached((32 * (size + 3), 32), [(8 * (size + 3), 8), (4 * (size + 3), 4)])
    assert len(generator._cache) == generator._CACHE_SIZE
    assert generator.cached((64, 96), shapes) is not first  # evicted, computed again: the same values
    np.testing.assert_array_equal(generator.cached((64, 96), shapes), first)
    with pytest.raises(ValueError, match="feature"):  # a miss checks the shapes as a call does
        generator.cached((64, 96), [(8, 12), (5, 6)])


# stage by stage: batch == per image, bit for bit ----------------------------------------------------------
def test_rpn_filter_batch_equals_each_image_alone(shapes):
    model, features, sizes = shapes["model"], shapes["features"], shapes["image_sizes"]
    levels = list(features.values())
    logits, deltas = model.rpn.head(levels)
    anchors = model.rpn.anchor_generator.cached(shapes["batch"].shape[-2:], [f.shape[-2:] for f in levels])
    boxes, scores = model.rpn.filter_proposals(anchors, logits, deltas, sizes)
    assert [len(b) for b in boxes] == [1000, 1000, 1000]
    assert boxes[2][:, 3].max() <= 250  # clipped to its own 250 rows, not to the padded 256
    for i in range(3):
        (alone,), (alone_scores,) = model.rpn.filter_proposals(
            anchors, [x[i: i + 1] for x in logits], [x[i: i + 1] for x in deltas], sizes[i: i + 1])
        np.testing.assert_array_equal(boxes[i], alone)
        np.testing.assert_array_equal(scores[i], alone_scores)
    # the same image twice: neither copy suppresses the other's boxes
    twice, _ = model.rpn.filter_proposals(anchors, [np.concatenate([x[:1]] * 2) for x in logits],
                                          [np.concatenate([x[:1]] * 2) for x in deltas], [sizes[0]] * 2)
    np.testing.assert_array_equal(twice[0], boxes[0])
    np.testing.assert_array_equal(twice[1], boxes[0])


def _postprocess_per_image_reference(heads, class_logits, box_regression, proposals, image_sizes):
    """The rule read off torchvision's ``postprocess_detections``, one image at a time, decoding every class."""
    num_classes = class_logits.shape[1]
    boxes_all = BoxCoder((10.0, 10.0, 5.0, 5.0)).decode(box_regression, np.concatenate(proposals))
    scores_all = softmax(class_logits)
    results, start = [], 0
    for proposal_boxes, size in zip(proposals, image_sizes):
        stop = start + len(proposal_boxes)
        boxes = clip_boxes_to_image(boxes_all[start:stop].reshape(-1, 4), size).reshape(-1, num_classes, 4)
        boxes, scores = boxes[:, 1:].reshape(-1, 4), scores_all[start:stop, 1:].reshape(-1)
        labels = np.tile(np.arange(1, num_classes), stop - start)
        keep = np.flatnonzero(scores > np.float32(heads.score_thresh))
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = remove_small_boxes(boxes, 1e-2)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = batched_nms(boxes, scores, labels, heads.nms_thresh)[: heads.detections_per_img]
        results.append(dict(boxes=boxes[keep], labels=labels[keep], scores=scores[keep]))
        start = stop
    return results


@pytest.mark.parametrize("score_thresh", [0.05, 0.0])
def test_box_postprocess_batch_equals_the_per_image_rule(shapes, score_thresh):
    # random head outputs over 3 images of different sizes: the one-pass post-processing (which decodes only
    # the candidates above the threshold) gives, per image, the boxes of the rule applied one image at a time
    heads = shapes["model"].roi_heads
    rng = np.random.default_rng(0)
    sizes = [(256, 256), (200, 256), (256, 120)]
    proposals = []
    for count, (h, w) in zip((50, 0, 70), sizes):
        corner = rng.uniform(0, 1, (count, 2)) * [w, h]
        proposals.append(np.concatenate([corner, corner + rng.uniform(4, 120, (count, 2))], 1).astype(np.float32))
    total = sum(len(p) for p in proposals)
    class_logits = rng.normal(0, 2, (total, 4)).astype(np.float32)
    box_regression = rng.normal(0, 1, (total, 16)).astype(np.float32)
    saved = heads.score_thresh
    heads.score_thresh = score_thresh
    try:
        ours = heads.postprocess_detections(class_logits, box_regression, proposals, sizes)
        expected = _postprocess_per_image_reference(heads, class_logits, box_regression, proposals, sizes)
    finally:
        heads.score_thresh = saved
    assert [len(r["boxes"]) for r in ours][1] == 0 and len(ours[0]["boxes"]) > 10
    for got, want in zip(ours, expected):
        for key in ("boxes", "labels", "scores"):
            np.testing.assert_array_equal(got[key], want[key])
        assert got["boxes"].dtype == np.float32 and got["labels"].dtype == np.int64
    assert ours[1]["boxes"].shape == (0, 4) and ours[2]["boxes"][:, 2].max() <= 120


def _random_boxes(seed: int, counts, largest: float) -> list[np.ndarray]:
    """Per image, `count` float32 boxes with corners in [0, 100) and sides 8 .. `largest` px."""
    rng = np.random.default_rng(seed)
    boxes = []
    for count in counts:
        corner = rng.uniform(0, 100, (count, 2))
        boxes.append(np.concatenate([corner, corner + rng.uniform(8, largest, (count, 2))], 1).astype(np.float32))
    return boxes


def test_pooler_fast_path_equals_the_public_call(shapes):
    model, features, sizes = shapes["model"], shapes["features"], shapes["image_sizes"]
    pool = model.roi_heads.box_roi_pool
    # boxes on every level (sides 8 .. 250 px: levels P2, P3, P4) and, in a second call, all on P2
    boxes = _random_boxes(1, (40, 0, 30), 150)
    boxes[0][:2] = [[0, 0, 250, 250], [2, 3, 240, 245]]  # sqrt(area) >= 224: P4
    public = pool(features, boxes, sizes)
    assert len(np.unique(pool.map_levels(boxes))) == 3  # the level mapper of that call
    np.testing.assert_array_equal(pool.pool_model_features(features, boxes, sizes), public)
    small = [b[:, :2].repeat(2, 1) + np.float32(10) for b in boxes]  # 10 x 10 boxes: every one on P2
    np.testing.assert_array_equal(pool.pool_model_features(features, small, sizes), pool(features, small, sizes))
    # per image alone, bit for bit: image 2's rows are the batch's last 30
    alone = pool.pool_model_features(_image(features, 2), [boxes[2]], sizes[2:])
    np.testing.assert_array_equal(alone, public[40:])
    # the public call still refuses a non-finite map
    broken = dict(features)
    broken["0"] = features["0"].copy()
    broken["0"][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        pool(broken, boxes, sizes)


def test_pooler_reuse_gives_the_same_values_in_arrays_kept_per_thread(shapes):
    # reuse=True (the detectors' calls): the same values as a fresh result, in arrays the pooler keeps and
    # overwrites on its next reuse call; another thread gets arrays of its own
    import threading

    model, features, sizes = shapes["model"], shapes["features"], shapes["image_sizes"]
    pool = model.roi_heads.box_roi_pool
    boxes = _random_boxes(4, (25, 3, 12), 250)
    fresh = pool.pool_model_features(features, boxes, sizes)
    first = pool.pool_model_features(features, boxes, sizes, reuse=True)
    np.testing.assert_array_equal(first, fresh)
    kept = first.copy()
    second = pool.pool_model_features(features, boxes[:1], sizes[:1], reuse=True)  # fewer rows: a view of the same
    assert np.shares_memory(first, second)
    np.testing.assert_array_equal(second, fresh[:25])
    other = {}
    thread = threading.Thread(target=lambda: other.update(
        result=pool.pool_model_features(features, boxes, sizes, reuse=True)))
    thread.start()
    thread.join()
    assert not np.shares_memory(other["result"], first)
    np.testing.assert_array_equal(other["result"], kept)


def test_a_model_copies_and_pickles_after_a_forward_pass(shapes):
    # regression: the poolers' kept arrays live in a thread-local workspace, which cannot be pickled as it is;
    # after a forward pass copy.deepcopy(model) and pickle.dumps(model) raised TypeError. A copy gets an empty
    # workspace of its own and the same detections
    import copy
    import pickle

    model, image = shapes["model"], shapes["images"][0]
    expected = model([image])[0]
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert other.roi_heads.box_roi_pool._scratch is not model.roi_heads.box_roi_pool._scratch
        got = other([image])[0]
        for key in ("boxes", "labels", "scores"):
            np.testing.assert_array_equal(got[key], expected[key])


def test_a_kept_trace_holds_copies_of_reused_arrays(shapes):
    # trace(keep_arrays=True) keeps each stage's arrays as they were: the pooled features of the first forward
    # pass stay what they were after a second pass reused the pooler's arrays
    from edudet.models import trace

    model = shapes["model"]
    image = shapes["images"][0]
    with trace(keep_arrays=True) as recorded:
        model([image])
        model([image[::-1].copy()])
    first, second = [s.arrays["box_features"] for s in recorded.stages if s.name == "roi_heads.box_roi_pool"]
    assert not np.shares_memory(first, second) and not np.array_equal(first, second)
    _, alone = model([image], trace=True)
    assert first.shape == alone["roi_heads.box_roi_pool"].outputs["box_features"]


def test_pooler_leaves_boxes_of_a_missing_level_at_zero():
    # maps at 1/4 and 1/16 of a 64-px image: levels k = 2 .. 4, the index of k = 4 (boxes with sqrt(area) >= 224)
    # has no map, so its rows stay 0 (torchvision's loop over the maps it has does the same); the fast path's
    # uninitialised output must not leak into them
    from edudet import MultiScaleRoIAlign
    rng = np.random.default_rng(3)
    features = {"a": rng.normal(1, 1, (1, 2, 16, 16)).astype(np.float32),
                "b": rng.normal(1, 1, (1, 2, 4, 4)).astype(np.float32)}
    boxes = [np.array([[0, 0, 8, 8], [0, 0, 230, 230], [1, 1, 60, 60]], np.float32)]
    pool = MultiScaleRoIAlign(["a", "b"], 2, 2)
    for result in (pool(features, boxes, [(64, 64)]), pool.pool_model_features(features, boxes, [(64, 64)])):
        assert (result[1] == 0).all() and (result[0] != 0).all() and (result[2] != 0).all()


def test_mask_predictor_applies_each_detections_class_row(shapes):
    predictor = shapes["model"].roi_heads.mask_branch.mask_predictor
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (5, 64, 14, 14)).astype(np.float32)
    labels = np.array([1, 3, 2, 1, 3])
    own = predictor(x, labels)
    assert own.shape == (5, 1, 28, 28)
    # the full transposed conv + 1x1 conv (all classes), then each detection's own class
    full = predictor(x)
    np.testing.assert_allclose(own[:, 0], full[np.arange(5), labels], rtol=0, atol=1e-5 * np.abs(full).max())
    # the transposed conv's 2 x 2 block of pixel (i, j) is output (2 i + dy, 2 j + dx): pixel (3, 5) alone
    # changes only the four outputs (6..7, 10..11)
    bumped = x.copy()
    bumped[:, :, 3, 5] += 1
    changed = np.argwhere((predictor(bumped, labels) != own).any(axis=(0, 1)))
    assert {tuple(p) for p in changed} <= {(6, 10), (6, 11), (7, 10), (7, 11)} and len(changed) > 0
    assert predictor(x[:0], labels[:0]).shape == (0, 1, 28, 28)


# the whole forward pass ------------------------------------------------------------------------------------
def test_batch_gives_each_image_its_own_detections(shapes):
    model, images = shapes["model"], shapes["images"]
    batch = model(images)
    for i, image in enumerate(images):
        alone = model([image])[0]
        np.testing.assert_array_equal(batch[i]["labels"], alone["labels"])
        np.testing.assert_allclose(batch[i]["boxes"], alone["boxes"], rtol=0, atol=1e-3)
        np.testing.assert_allclose(batch[i]["scores"], alone["scores"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(batch[i]["masks"], alone["masks"], rtol=0, atol=1e-4)
        assert len(alone["boxes"]) > 3
