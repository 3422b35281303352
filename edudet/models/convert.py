"""``python -m edudet convert model.pth out.npz``: a torchvision checkpoint -> edudet's ``.npz`` (needs torch).

Accepts what ``torch.save`` wrote: a ``state_dict``, a training checkpoint holding one under ``"model"`` or
``"state_dict"``, or a whole model object. The weights are checked against the edudet model (strict, so a
wrong file fails here, not at run time), and written with the constructor arguments. This is the only
edudet command that imports torch; the ``.npz`` it writes needs nothing but NumPy.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main", "read_checkpoint"]


def read_checkpoint(path) -> dict:
    """The torchvision-named state dict inside a ``.pth`` file, as NumPy arrays."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a whole pickled model: only possible by running the pickle's code
        print(f"note: {Path(path).name} is not a plain state_dict ({type(err).__name__}); loading it as a "
              "pickled model object, which runs code from the file: convert only files you trust",
              file=sys.stderr)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    for key in ("model", "state_dict"):  # training checkpoints wrap the weights
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state_dict or a model")
    return {key: value.detach().cpu().numpy() for key, value in obj.items() if hasattr(value, "detach")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edudet convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a .pth written by torch.save (state_dict or model)")
    parser.add_argument("output", help="the .npz to write")
    parser.add_argument("--architecture", default="auto",
                        choices=["auto", "fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "fcos_resnet50_fpn",
                                 "retinanet_resnet50_fpn", "fasterrcnn_resnet18_fpn", "maskrcnn_resnet18_fpn"],
                        help="the detector the checkpoint is for (default: recognised from its keys)")
    parser.add_argument("--half", action="store_true",
                        help="store conv and linear weights as float16 (half the file; each weight rounded to "
                             "11 significant bits; loaded back as float32)")
    parser.add_argument("--bn-eps", type=float, default=None,
                        help="the batch norms' epsilon (default 1e-5, torchvision's layers); torchvision's COCO_V1 "
                             "Faster R-CNN, Mask R-CNN and RetinaNet weights run with 0: pass --bn-eps 0 for them")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("edudet convert needs torch to read .pth files (pip install torch); nothing else in edudet does",
              file=sys.stderr)
        return 2
    from . import _BUILDERS, architecture_of, num_classes_of
    from .weights import CONFIG_KEY

    if not Path(args.checkpoint).exists():
        print(f"edudet convert: {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    state = read_checkpoint(args.checkpoint)
    state.pop(CONFIG_KEY, None)
    architecture = architecture_of(state) if args.architecture == "auto" else args.architecture
    num_classes = num_classes_of(state, architecture) or 91
    try:
        options = {} if args.bn_eps is None else {"bn_eps": args.bn_eps}
        model = _BUILDERS[architecture](state, num_classes=num_classes, **options)
    except ValueError as err:
        print(f"edudet convert: {args.checkpoint} is not a {architecture} checkpoint: {err}", file=sys.stderr)
        return 1
    path = model.save(args.output, half=args.half)
    print(f"wrote {path} ({architecture}, {len(model.state_dict())} arrays, num_classes={num_classes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
