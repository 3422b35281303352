"""Weights: torchvision's parameter names in, folded float32 arrays inside, ``.npz`` files on disk.

A model is a tree of `StateModule`s whose leaves are layers. Each declares its parts once (`children`:
name -> layer or sub-module); the torchvision names and shapes it expects (`state_shapes`) and the loading
of the checked arrays (`load_state`) both follow from that declaration, each parent adding its children's
prefixes, so the whole model lists exactly the keys of torchvision's ``state_dict()``.
`check_state_dict` compares a mapping with that list once and raises one error naming every missing,
unexpected and mis-shaped entry. Nothing here needs torch: tensors are accepted but never required.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from .._validate import check_scalar

__all__ = ["StateModule", "normalize_state_dict", "check_state_dict", "check_state_values", "random_state_dict",
           "save_npz", "load_npz", "load_weights", "CONFIG_KEY"]

CONFIG_KEY = "__edudet_config__"  # the .npz entry holding the constructor's arguments as JSON

# torchvision < 0.13 saved these layers without the Conv2dNormActivation wrapper (the COCO checkpoints
# still use the old names); torchvision renames them on load and so do we
_LEGACY_NAMES = [
    (re.compile(r"^(.*fpn\.(?:inner|layer)_blocks\.\d+)\.(weight|bias)$"), r"\1.0.\2"),
    (re.compile(r"^(.*rpn\.head\.conv)\.(weight|bias)$"), r"\1.0.0.\2"),
    # Mask R-CNN's mask head: mask_fcn{i + 1} -> {i}.0
    (re.compile(r"^(.*mask_head)\.mask_fcn(\d+)\.(weight|bias)$"),
     lambda m: f"{m.group(1)}.{int(m.group(2)) - 1}.0.{m.group(3)}"),
    # RetinaNet's head towers: conv.{2 i} (conv, then ReLU at 2 i + 1) -> conv.{i}.0
    (re.compile(r"^(head\.(?:classification|regression)_head\.conv)\.(\d+)\.(weight|bias)$"),
     lambda m: f"{m.group(1)}.{int(m.group(2)) // 2}.0.{m.group(3)}"),
]


class StateModule:
    """A part of a model whose parameters have torchvision's names (see the module docstring).

    A part declares its parameters once, in `children`: name -> a layer (`layers.Conv2d`, `Linear`,
    `GroupNorm`, `ConvTranspose2d`, `FrozenBatchNorm2d`, each listing its own ``weight``/``bias``/... keys) or
    another `StateModule`. `state_shapes` and `load_state` both walk that one mapping, in its order (a conv
    before the batch norm folded into it), so no weight is ever named twice.
    """

    def children(self) -> dict[str, object]:
        """name -> layer or sub-module, in torchvision's ``state_dict`` order (empty: no parameters)."""
        return {}

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for name, child in self.children().items():
            shapes.update({f"{name}.{key}": tuple(shape) for key, shape in child.state_shapes().items()})
        return shapes

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        for name, child in self.children().items():
            child.load_state(sub_state(state, name))


def sub_state(state: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries of `state` under ``prefix.``, with the prefix removed."""
    head = prefix + "."
    return {key[len(head):]: value for key, value in state.items() if key.startswith(head)}


def _as_array(value, key: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"state_dict entry {key!r} must be a numeric array, got dtype {array.dtype}")
    return array


def normalize_state_dict(mapping: Mapping, expected: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Arrays under current torchvision names: tensors converted, legacy names renamed, and the
    ``num_batches_tracked`` counters of BatchNorm2d (training bookkeeping) dropped."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"state_dict must be a mapping from parameter names to arrays, got {type(mapping).__name__}")
    state = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be str, got {key!r}")
        if key == CONFIG_KEY:
            continue
        if key.endswith(".num_batches_tracked") and key[: -len("num_batches_tracked")] + "running_mean" in expected:
            continue
        if key not in expected:
            for pattern, replacement in _LEGACY_NAMES:
                renamed = pattern.sub(replacement, key)
                if renamed != key and renamed in expected:
                    key = renamed
                    break
        state[key] = _as_array(value, key)
    return state


def check_state_dict(state: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]],
                     strict: bool = True, hint=None) -> None:
    """Raise one ValueError listing every missing, unexpected (when `strict`) and mis-shaped entry."""
    missing = [k for k in expected if k not in state] if strict else []
    unexpected = [k for k in state if k not in expected] if strict else []
    mismatched = [f"{k}: got {tuple(state[k].shape)}, expected {tuple(expected[k])}"
                  for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k])]
    if not (missing or unexpected or mismatched):
        return
    lines = ["the weights do not fit this model:"]
    if hint:
        lines.append(hint)
    for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
        if items:
            shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
            lines.append(f"  {len(items)} {title}: " + ", ".join(shown))
    raise ValueError("\n".join(lines))


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_state_values(state: Mapping[str, np.ndarray], bn_eps: float = 1e-5) -> None:
    """Refuse, naming the key, weights that would only fail later, deep inside a forward pass.

    Every value must be finite and fit in float32 (the model computes in float32: a float64 1e300 would
    become inf); a batch norm's ``running_var`` is a variance, so >= 0, and ``weight / sqrt(running_var +
    bn_eps)``, the scale folded into its conv, must be finite in float32 (``running_var = 0`` with
    ``bn_eps = 0`` divides by zero).
    """
    for key, value in state.items():
        if not value.size:
            continue
        if np.issubdtype(value.dtype, np.floating):
            if not np.isfinite(value).all():
                raise ValueError(f"state_dict entry {key!r} contains NaN or inf")
            largest = float(np.max(np.abs(value)))
            if largest > FLOAT32_MAX:
                raise ValueError(f"state_dict entry {key!r} holds {largest:.3g}, beyond float32's range "
                                 f"(+-{FLOAT32_MAX:.3g}), which the model computes in")
        if key.endswith(".running_var"):
            variance = value.astype(np.float64)
            if float(variance.min()) < 0:
                raise ValueError(f"state_dict entry {key!r} is a variance but holds {float(variance.min()):.3g}; "
                                 "running_var must be >= 0")
            weight = state.get(key[: -len("running_var")] + "weight")
            weight = np.ones_like(variance) if weight is None else np.abs(np.asarray(weight, np.float64))
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                scale = weight / np.sqrt(variance + bn_eps)
            if not (np.isfinite(scale).all() and float(np.max(scale)) <= FLOAT32_MAX):
                raise ValueError(f"state_dict entry {key!r}: weight / sqrt(running_var + bn_eps) with bn_eps={bn_eps} "
                                 "is not finite in float32 (a zero variance with bn_eps=0?)")


def random_state_dict(expected: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random weights with torchvision's initialisation rules, by name.

    ResNet and mask-head convs: Kaiming normal (fan out); FPN convs: Kaiming uniform (a = 1); RPN head and
    the dense heads of RetinaNet / FCOS: normal(0.01); linear layers: PyTorch's default
    uniform(+-1/sqrt(fan_in)); batch and group norms: identity (weight 1, bias 0, mean 0, var 1); conv
    biases 0, except the dense classifier's: ``-log((1 - 0.01) / 0.01)``, the focal-loss prior (Lin et al.,
    2017) that starts every class at probability 0.01.
    """
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in expected.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "running_mean":
            value = np.zeros(shape)
        elif leaf == "running_var":
            value = np.ones(shape)
        elif len(shape) == 4:  # a conv weight
            fan_in, fan_out = int(np.prod(shape[1:])), shape[0] * shape[2] * shape[3]
            if ".rpn." in f".{key}" or key.startswith("head."):
                value = rng.normal(0.0, 0.01, shape)
            elif ".fpn." in f".{key}":
                bound = np.sqrt(3.0 / fan_in)
                value = rng.uniform(-bound, bound, shape)
            else:
                value = rng.normal(0.0, np.sqrt(2.0 / fan_out), shape)
        elif len(shape) == 2:  # a linear weight
            bound = 1.0 / np.sqrt(shape[1])
            value = rng.uniform(-bound, bound, shape)
        elif key == "head.classification_head.cls_logits.bias":
            value = np.full(shape, -np.log((1 - 0.01) / 0.01))
        elif leaf == "bias":
            weight_shape = expected.get(key[: -len("bias")] + "weight", ())
            if len(weight_shape) == 2:
                bound = 1.0 / np.sqrt(weight_shape[1])
                value = rng.uniform(-bound, bound, shape)
            else:
                value = np.zeros(shape)
        elif leaf == "weight":  # a batch norm's scale
            value = np.ones(shape)
        else:
            value = np.zeros(shape)
        state[key] = value.astype(np.float32)
    return state


def save_npz(path, state: Mapping[str, np.ndarray], config: Mapping | None = None) -> Path:
    """Write `state` (and the constructor arguments `config`) to an uncompressed ``.npz``."""
    path = Path(path)
    arrays = {key: np.asarray(value) for key, value in state.items()}
    if config is not None:
        arrays[CONFIG_KEY] = np.array(json.dumps(dict(config)))
    with open(path, "wb") as handle:  # a file handle: numpy would otherwise append ".npz" to other suffixes
        np.savez(handle, **arrays)
    return path


def load_npz(path) -> tuple[dict[str, np.ndarray], dict]:
    """(state, config) from a file written by `save_npz` (config is {} when the file has none).

    Raises FileNotFoundError for a missing file and ValueError, naming the file and what is wrong, for
    anything that is not such an ``.npz`` (corrupt or truncated, a PyTorch ``.pth``, a single ``.npy``,
    pickled object arrays: pickles are never loaded, as they could run code).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    try:
        state, config = _read_npz(path)
    except Exception as err:  # noqa: BLE001 - a malformed file can fail in any layer (zip, zlib, npy, json)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "allow_pickle" in reason:
            reason = "it holds pickled Python objects, which edudet never loads (they could run code)"
        raise ValueError(f"weights file {str(path)!r} is not a readable edudet .npz: {reason}") from None
    return state, config


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    if not path.is_file():
        raise ValueError("it is not a file")
    with open(path, "rb") as handle:
        head = handle.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise ValueError("it is a single .npy array, not an .npz of named weights")
    if not head.startswith(b"PK"):  # every .npz is a zip archive
        raise ValueError("it is empty" if not head else
                         "it is a pickle (an old torch.save file?); edudet never loads pickles, they could run code"
                         if head[:1] == b"\x80" else "it is not a zip archive (corrupt, or not an .npz)")
    with np.load(path, allow_pickle=False) as data:
        foreign = [member for member in data.zip.namelist() if not member.endswith(".npy")]
        if any(member.endswith("data.pkl") for member in foreign):
            raise ValueError(f"it is a PyTorch checkpoint: convert it first, `python -m edudet convert {path.name} "
                             "weights.npz`")
        if foreign:
            raise ValueError(f"it holds {foreign[0]!r}, which is not a NumPy array")
        state = {key: data[key] for key in data.files if key != CONFIG_KEY}
        config = json.loads(str(data[CONFIG_KEY])) if CONFIG_KEY in data.files else {}
    if not isinstance(config, dict):
        raise ValueError(f"its {CONFIG_KEY} entry is not a JSON object")
    return state, config


def load_weights(model, weights, seed: int = 0):
    """Fill `model` from `weights`: None (seeded `random_state_dict`), a path to an ``.npz``, or a mapping."""
    seed = check_scalar(seed, "seed", low=0, integer=True)
    if weights is None:
        model.load_state_dict(random_state_dict(model.state_shapes(), seed))
    elif isinstance(weights, (str, Path)):
        state, _ = load_npz(weights)
        model.load_state_dict(state)
    elif isinstance(weights, Mapping):
        model.load_state_dict(weights)
    else:
        raise TypeError(f"weights must be None, a path to an .npz or a mapping of arrays, got {type(weights).__name__}")
    return model
