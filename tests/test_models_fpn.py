"""edudet.models.fpn and resnet: the pyramid's rule by hand, and parity with torchvision's modules."""
import numpy as np
import pytest

from edudet.models.fpn import FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7
from edudet.models.resnet import Bottleneck
from tests.helpers import import_torchvision


def _identity_fpn(channels: int, levels: int, extra=None) -> FeaturePyramidNetwork:
    """Lateral 1x1 convs = identity, smoothing 3x3 convs = identity (centre tap 1), biases 0."""
    fpn = FeaturePyramidNetwork([channels] * levels, channels, extra)
    eye = np.eye(channels, dtype=np.float32)
    centre = np.zeros((channels, channels, 3, 3), np.float32)
    centre[:, :, 1, 1] = eye
    state = {}
    for i in range(levels):
        state[f"inner_blocks.{i}.0.weight"] = eye[:, :, None, None]
        state[f"inner_blocks.{i}.0.bias"] = np.zeros(channels, np.float32)
        state[f"layer_blocks.{i}.0.weight"] = centre
        state[f"layer_blocks.{i}.0.bias"] = np.zeros(channels, np.float32)
    fpn.load_state(state)
    return fpn


def test_top_down_sum_hand():
    # with identity convs P5 = C5 and P4 = C4 + upsample2x(C5): C4 = 1 everywhere, C5 = [[2, 3]]
    # -> P4 = [[3, 3, 4, 4], [3, 3, 4, 4]]; the max-pool level is P5[::2, ::2] = [[2]]
    c4 = np.ones((1, 1, 2, 4), np.float32)
    c5 = np.array([[[[2.0, 3.0]]]], np.float32)
    out = _identity_fpn(1, 2, LastLevelMaxPool())([c4, c5])
    assert list(out) == ["0", "1", "pool"]
    np.testing.assert_array_equal(out["0"][0, 0], [[3, 3, 4, 4], [3, 3, 4, 4]])
    np.testing.assert_array_equal(out["1"][0, 0], [[2, 3]])
    np.testing.assert_array_equal(out["pool"][0, 0], [[2]])


def test_odd_sizes_use_nearest_to_the_finer_shape():
    # C4 3 x 5 and C5 2 x 3 (an unpadded input): nearest to 3 x 5 reads rows floor(i * 2/3) = 0, 0, 1
    c4 = np.zeros((1, 1, 3, 5), np.float32)
    c5 = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    p4 = _identity_fpn(1, 2)([c4, c5])["0"][0, 0]
    np.testing.assert_array_equal(p4[:, 0], [0, 0, 3])
    np.testing.assert_array_equal(p4[0], [0, 0, 1, 1, 2])  # columns floor(j * 3/5) = 0, 0, 1, 1, 2


@pytest.mark.parametrize("extra", ["maxpool", "p6p7_from_c5", "p6p7_from_p5"])
def test_fpn_matches_torchvision(extra):
    torch, torchvision = import_torchvision()
    from torchvision.ops import feature_pyramid_network as tv_fpn

    torch.manual_seed(0)
    in_channels, out = [4, 8, 16], 6
    blocks = {"maxpool": (tv_fpn.LastLevelMaxPool(), LastLevelMaxPool()),
              "p6p7_from_c5": (tv_fpn.LastLevelP6P7(16, out), LastLevelP6P7(16, out)),
              "p6p7_from_p5": (tv_fpn.LastLevelP6P7(out, out), LastLevelP6P7(out, out))}[extra]
    tv = tv_fpn.FeaturePyramidNetwork(in_channels, out, extra_blocks=blocks[0]).eval()
    ours = FeaturePyramidNetwork(in_channels, out, extra_blocks=blocks[1])
    state = {k: v.numpy() for k, v in tv.state_dict().items()}
    assert ours.state_shapes() == {k: v.shape for k, v in state.items()}
    ours.load_state(state)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((2, c, s, s + 3)).astype(np.float32) for c, s in zip(in_channels, (16, 8, 4))]
    with torch.no_grad():
        expected = tv({str(i): torch.from_numpy(x) for i, x in enumerate(inputs)})
    got = ours(inputs)
    assert list(got) == list(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name].numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("stride,in_channels", [(1, 16), (2, 8), (1, 8)])
def test_bottleneck_matches_torchvision(stride, in_channels):
    torch, torchvision = import_torchvision()
    from torchvision.models.resnet import Bottleneck as TVBottleneck

    torch.manual_seed(stride)
    width = 4
    downsample = None
    if stride != 1 or in_channels != width * 4:
        downsample = torch.nn.Sequential(torch.nn.Conv2d(in_channels, width * 4, 1, stride, bias=False),
                                         torch.nn.BatchNorm2d(width * 4))
    tv = TVBottleneck(in_channels, width, stride, downsample)
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    tv.eval()
    ours = Bottleneck(in_channels, width, stride)
    state = {k: v.numpy() for k, v in tv.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert ours.state_shapes() == {k: v.shape for k, v in state.items()}
    ours.load_state(state)
    x = np.random.default_rng(1).standard_normal((1, in_channels, 9, 10)).astype(np.float32)
    with torch.no_grad():
        expected = tv(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(x), expected, rtol=1e-5, atol=1e-5)
