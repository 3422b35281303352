"""``python -m edudet convert model.pth out.npz``: a torchvision checkpoint -> edudet's ``.npz`` (needs torch).

Accepts what ``torch.save`` wrote: a ``state_dict`` or a training checkpoint holding one under ``"model"``
or ``"state_dict"``, read with ``torch.load(weights_only=True)``, which unpickles tensors and plain
containers only. A whole pickled model object (``torch.save(model)``) can only be read by running code
stored in the file, so it is refused unless you pass ``--trust-pickle`` (for files from a source you
trust: a crafted ``.pth`` runs anything it likes). The weights are checked against the edudet model
(strict, so a wrong file fails here, not at run time), and written with the constructor arguments. This
is the only edudet command that imports torch; the ``.npz`` it writes needs nothing but NumPy.

Exit codes: 0 written; 1 the checkpoint does not fit the detector; 2 the file cannot be read (missing,
empty, corrupt, pickled objects without ``--trust-pickle``) or the output cannot be written.
"""
from __future__ import annotations

import argparse
import pickle
import re
import sys
from pathlib import Path

from . import ARCHITECTURES, architecture_of, num_classes_of
from .weights import CONFIG_KEY

__all__ = ["main", "read_checkpoint"]


def read_checkpoint(path, trust_pickle: bool = False) -> dict:
    """The torchvision-named state dict inside a ``.pth`` file, as NumPy arrays.

    Raises ValueError, naming the file, when it cannot be read: empty, corrupt, not a state dict, or holding
    pickled Python objects beyond tensors (a whole model) while `trust_pickle` is False.
    """
    import torch  # only here: converting is the one step that needs torch

    name = str(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as err:
        text = str(err)
        # torch names the first global (class or function) its safe unpickler refused; other failures are damage
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if not trust_pickle and (found or "unrecognized function" in text or "Unsupported class" in text):
            what = f" ({found.group(1)})" if found else ""
            raise ValueError(f"{name} holds pickled Python objects{what}, not only tensors (a whole model saved "
                             "with torch.save(model)?); reading it would run code stored in the file. Pass "
                             "--trust-pickle to load it anyway, only if you trust its source") from None
        reason = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        raise ValueError(f"{name} is not a readable PyTorch checkpoint (corrupt, truncated or not a .pth): "
                         f"{reason.group(1) if reason else _first_line(err)}") from None
    except Exception as err:  # noqa: BLE001 - a corrupt file fails anywhere in zip / pickle / storage reading
        what = "it is empty" if Path(path).is_file() and Path(path).stat().st_size == 0 else _first_line(err)
        raise ValueError(f"{name} is not a readable PyTorch checkpoint (corrupt, truncated or not a .pth): "
                         f"{what}") from None
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    for key in ("model", "state_dict"):  # training checkpoints wrap the weights
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{name} holds a {type(obj).__name__}, not a state_dict or a model")
    state = {key: value.detach().cpu().numpy() for key, value in obj.items() if isinstance(value, torch.Tensor)}
    if not state:
        raise ValueError(f"{name} holds no tensors")
    return state


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edudet convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a .pth written by torch.save (state_dict or model)")
    parser.add_argument("output", help="the .npz to write")
    parser.add_argument("--architecture", default="auto",
                        choices=["auto", *ARCHITECTURES],
                        help="the detector the checkpoint is for (default: recognised from its keys)")
    parser.add_argument("--half", action="store_true",
                        help="store conv and linear weights as float16 (half the file; each weight rounded to "
                             "11 significant bits; loaded back as float32)")
    parser.add_argument("--bn-eps", type=float, default=None,
                        help="the batch norms' epsilon (default 1e-5, torchvision's layers); torchvision's COCO_V1 "
                             "Faster R-CNN, Mask R-CNN and RetinaNet weights run with 0: pass --bn-eps 0 for them")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="also read a checkpoint that holds pickled Python objects (a whole model saved with "
                             "torch.save(model)): this RUNS CODE stored in the file; only for files you trust")
    args = parser.parse_args(argv)
    if args.bn_eps is not None and not 0 <= args.bn_eps <= 1:  # NaN fails this too
        parser.error("--bn-eps must be in [0, 1]")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("edudet convert needs torch to read .pth files (pip install torch); nothing else in edudet does",
              file=sys.stderr)
        return 2
    if not Path(args.checkpoint).exists():
        print(f"edudet convert: {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    if args.trust_pickle:
        print(f"note: --trust-pickle: reading {args.checkpoint} may run code stored in it", file=sys.stderr)
    try:
        state = read_checkpoint(args.checkpoint, trust_pickle=args.trust_pickle)
    except ValueError as err:
        print(f"edudet convert: {_one_line(err)}", file=sys.stderr)
        return 2
    state.pop(CONFIG_KEY, None)
    architecture = architecture_of(state) if args.architecture == "auto" else args.architecture
    num_classes = num_classes_of(state, architecture) or 91
    try:
        options = {} if args.bn_eps is None else {"bn_eps": args.bn_eps}
        model = ARCHITECTURES[architecture][0](state, num_classes=num_classes, **options)
    except (TypeError, ValueError) as err:
        print(f"edudet convert: {args.checkpoint} does not load as a {architecture} checkpoint: {_one_line(err)}",
              file=sys.stderr)
        return 1
    try:
        path = model.save(args.output, half=args.half)
    except (OSError, ValueError) as err:
        print(f"edudet convert: cannot write {args.output}: {_one_line(err)}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({architecture}, {len(model.state_dict())} arrays, num_classes={num_classes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
