"""BalancedPositiveNegativeSampler: hand counts, properties, count parity with torchvision."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet import BalancedPositiveNegativeSampler
from helpers import import_torchvision


def test_counts_by_hand():
    labels = np.array([1, 2, 3] + [0] * 10 + [-1] * 5)
    # batch 8, fraction .25: int(8 * .25) = 2 of the 3 positives, then 8 - 2 = 6 of the 10 negatives
    pos, neg = BalancedPositiveNegativeSampler(8, 0.25, seed=0)([labels])
    assert pos[0].sum() == 2 and neg[0].sum() == 6
    assert pos[0].dtype == np.uint8 and pos[0].shape == labels.shape
    # too few negatives: batch 20 with fraction .5 takes all 3 positives and all 10 negatives
    pos, neg = BalancedPositiveNegativeSampler(20, 0.5, seed=0)(labels)
    assert pos[0].sum() == 3 and neg[0].sum() == 10
    # int() truncates: 10 * 0.33 = 3.3 -> 3 positives
    assert BalancedPositiveNegativeSampler(10, 0.33).sample_counts(100, 100) == (3, 7)


def test_reproducible():
    labels = np.random.default_rng(0).integers(-1, 3, 500)
    a = BalancedPositiveNegativeSampler(64, 0.25, seed=7)([labels, labels])
    b = BalancedPositiveNegativeSampler(64, 0.25, seed=np.random.default_rng(7))([labels, labels])
    for x, y in zip(a[0] + a[1], b[0] + b[1]):
        np.testing.assert_array_equal(x, y)
    c = BalancedPositiveNegativeSampler(64, 0.25, seed=8)([labels])
    assert not np.array_equal(a[1][0], c[1][0])


def test_empty_and_bad_input():
    pos, neg = BalancedPositiveNegativeSampler(8, 0.5, seed=0)([np.zeros(0, dtype=np.int64)])
    assert pos[0].shape == (0,) and neg[0].shape == (0,)
    with pytest.raises(ValueError, match="positive_fraction"):
        BalancedPositiveNegativeSampler(8, 1.5)
    with pytest.raises(ValueError, match="batch_size_per_image"):
        BalancedPositiveNegativeSampler(-1, 0.5)
    with pytest.raises(TypeError, match="seed"):
        BalancedPositiveNegativeSampler(8, 0.5, seed="abc")
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        BalancedPositiveNegativeSampler(8, 0.5)([np.zeros((2, 2))])
    with pytest.raises(ValueError, match="NaN"):
        BalancedPositiveNegativeSampler(8, 0.5)([np.array([0.0, np.nan])])


@given(labels=st.lists(st.integers(-1, 3), max_size=80), batch=st.integers(0, 40), fraction=st.floats(0, 1),
       seed=st.integers(0, 2**32))
def test_samples_are_disjoint_subsets_with_the_right_counts(labels, batch, fraction, seed):
    labels = np.array(labels, dtype=np.int64)
    sampler = BalancedPositiveNegativeSampler(batch, fraction, seed=seed)
    pos, neg = (m[0].astype(bool) for m in sampler([labels]))
    assert np.all(labels[pos] >= 1) and np.all(labels[neg] == 0)  # -1 is never sampled
    assert (pos.sum(), neg.sum()) == sampler.sample_counts((labels >= 1).sum(), (labels == 0).sum())
    assert pos.sum() + neg.sum() <= batch


@pytest.mark.parametrize("seed", range(5))
def test_count_parity(seed):
    torch, _ = import_torchvision()
    from torchvision.models.detection._utils import BalancedPositiveNegativeSampler as TvSampler

    rng = np.random.default_rng(seed)
    labels = rng.choice([-1, 0, 1, 2], size=int(rng.integers(0, 3000)), p=rng.dirichlet(np.ones(4)))
    batch, fraction = int(rng.integers(1, 600)), float(rng.uniform(0, 1))
    tv_pos, tv_neg = TvSampler(batch, fraction)([torch.from_numpy(labels)])
    pos, neg = BalancedPositiveNegativeSampler(batch, fraction, seed=seed)([labels])
    assert pos[0].sum() == int(tv_pos[0].sum()) and neg[0].sum() == int(tv_neg[0].sum())


@pytest.mark.parametrize("call, error, match", [
    # issue 12 finding 13: NaN, inf, ints beyond int64, bools and 0-d arrays name the argument
    (lambda: BalancedPositiveNegativeSampler(float("nan"), 0.5), ValueError, "batch_size_per_image must be finite"),
    (lambda: BalancedPositiveNegativeSampler(2**64, 0.5), ValueError, "batch_size_per_image must fit"),
    (lambda: BalancedPositiveNegativeSampler(8.5, 0.5), ValueError, "batch_size_per_image must be an integer"),
    (lambda: BalancedPositiveNegativeSampler(8, float("inf")), ValueError, "positive_fraction must be finite"),
    (lambda: BalancedPositiveNegativeSampler(8, np.array([0.5])), TypeError, "positive_fraction"),
    (lambda: BalancedPositiveNegativeSampler(8, 0.5, seed=-1), ValueError, "seed must be >= 0"),
    (lambda: BalancedPositiveNegativeSampler(8, 0.5, seed=2**64), ValueError, "seed must fit in a 64-bit integer"),
    (lambda: BalancedPositiveNegativeSampler(8, 0.5, seed=True), TypeError, "seed"),
    (lambda: BalancedPositiveNegativeSampler(8, 0.5, seed=1.5), TypeError, "seed"),
    (lambda: BalancedPositiveNegativeSampler(8, 0.5).sample_counts(float("nan"), 3), ValueError, "num_positives"),
    (lambda: BalancedPositiveNegativeSampler(8, 0.5).sample_counts(3, -1), ValueError, "num_negatives"),
    (lambda: BalancedPositiveNegativeSampler(8, 0.5)(np.array(3)), ValueError, r"matched_idxs\[0\] must have shape"),
])
def test_bad_parameters_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_zero_d_arrays_and_huge_batches():
    sampler = BalancedPositiveNegativeSampler(np.array(8), np.float32(0.25), seed=np.array(7))
    assert sampler.batch_size_per_image == 8 and sampler.sample_counts(np.int64(5), 100) == (2, 6)
    # the largest batch: every positive and negative is sampled, nothing overflows
    big = BalancedPositiveNegativeSampler(2**63 - 1, 0.5, seed=0)
    pos, neg = big([np.array([1, 0, 0, -1, 2])])
    np.testing.assert_array_equal(pos[0], [1, 0, 0, 0, 1])
    np.testing.assert_array_equal(neg[0], [0, 1, 1, 0, 0])
