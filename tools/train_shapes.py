"""Train the light Mask R-CNN on generated shapes with torchvision, then ship it as edudet's default weights.

    python tools/train_shapes.py                  # train, evaluate, convert, write edudet/data/shapes_maskrcnn.*
    python tools/train_shapes.py --finish RUN/final.pth   # only evaluate + convert an existing checkpoint

Not part of the installed package and not run by CI (it needs torch; the shipped run, 1,600 steps of 4
images, took 37 minutes on this project's 2-core machine and records its time in the JSON).
Every training image is made fresh from (data seed, index) by `edudet.data.ShapesDataset`, so the run
needs no data on disk and is repeatable; the evaluation images come from another seed. The model is
`edudet.models.light.torchvision_model` (ResNet-18 C2..C4 + 64-channel FPN, trained from scratch with
BatchNorm2d), SGD with momentum, linear warm-up and two step decays. At the end the script evaluates the
torchvision model, converts it with ``python -m edudet convert``, evaluates the converted weights through
edudet's NumPy forward pass on the same images, and records both in a JSON next to the weights.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edudet.data import ShapesDataset  # noqa: E402
from edudet.eval import mean_average_precision  # noqa: E402
from edudet.models.light import torchvision_model  # noqa: E402

ARCHITECTURE = "maskrcnn_resnet18_fpn"


def to_torch(image: np.ndarray, target: dict):
    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
    return tensor, {"boxes": torch.from_numpy(target["boxes"]), "labels": torch.from_numpy(target["labels"]),
                    "masks": torch.from_numpy(target["masks"])}


def ground_truths(dataset) -> list[dict]:
    return [{"boxes": t["boxes"], "labels": t["labels"]} for _, t in (dataset[i] for i in range(len(dataset)))]


@torch.no_grad()
def evaluate_torchvision(model, dataset) -> dict:
    model.eval()
    predictions = []
    for i in range(len(dataset)):
        image, _ = to_torch(*dataset[i])
        out = model([image])[0]
        predictions.append({k: out[k].numpy() for k in ("boxes", "labels", "scores")})
    model.train()
    return mean_average_precision(predictions, ground_truths(dataset))


def evaluate_edudet(npz: Path, dataset) -> dict:
    from edudet.models import load

    model = load(npz)
    predictions = [model([dataset[i][0]])[0] for i in range(len(dataset))]
    return mean_average_precision(predictions, ground_truths(dataset))


def learning_rate(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (0.001 + 0.999 * step / args.warmup)
    return args.lr * 0.1 ** sum(step >= int(f * args.steps) for f in (0.8, 0.93))


def train(args, run_dir: Path) -> Path:
    torch.manual_seed(args.torch_seed)
    model = torchvision_model(ARCHITECTURE, num_classes=4, rpn_post_nms_top_n_train=500,
                              box_batch_size_per_image=128)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    data = ShapesDataset(args.steps * args.batch_size, args.image_size, seed=args.data_seed)
    probe = ShapesDataset(20, args.image_size, seed=args.eval_seed + 1)  # a quick check while training
    model.train()
    start, smoothed = time.time(), None
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        batch = [to_torch(*data[step * args.batch_size + j]) for j in range(args.batch_size)]
        losses = model([b[0] for b in batch], [b[1] for b in batch])
        loss = sum(losses.values())
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"step {step}: loss is {loss.item()} ({ {k: v.item() for k, v in losses.items()} })")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 10.0)
        optimizer.step()
        smoothed = loss.item() if smoothed is None else 0.95 * smoothed + 0.05 * loss.item()
        if step % 50 == 0 or step == args.steps - 1:
            parts = " ".join(f"{k[5:]}={v.item():.3f}" for k, v in losses.items())
            print(f"step {step:5d} lr {learning_rate(step, args):.4f} loss {smoothed:.3f} ({parts}) "
                  f"{time.time() - start:6.0f} s", flush=True)
        if (step + 1) % args.checkpoint_every == 0 and step + 1 < args.steps:
            torch.save(model.state_dict(), run_dir / "last.pth")
            stats = evaluate_torchvision(model, probe)
            print(f"  checkpoint at step {step + 1}: probe AP {stats['AP']:.3f} AP50 {stats['AP50']:.3f}", flush=True)
    final = run_dir / "final.pth"
    torch.save(model.state_dict(), final)
    (run_dir / "train.json").write_text(json.dumps({"seconds": round(time.time() - start, 1)}))
    return final


def finish(args, checkpoint: Path, run_dir: Path, training: dict) -> None:
    out = Path(args.output)
    npz = out.with_suffix(".npz")
    subprocess.run([sys.executable, "-m", "edudet", "convert", str(checkpoint), str(npz),
                    "--architecture", ARCHITECTURE, "--half"], check=True, cwd=ROOT)
    evaluation = ShapesDataset(args.eval_images, args.image_size, seed=args.eval_seed)
    model = torchvision_model(ARCHITECTURE, num_classes=4)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    tv_float32 = evaluate_torchvision(model, evaluation)
    # the float16-rounded weights edudet ships, back in torchvision
    tv = evaluate_torchvision(torchvision_model(ARCHITECTURE, num_classes=4, weights=npz), evaluation)
    ed = evaluate_edudet(npz, evaluation)
    keys = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
    record = {
        "architecture": ARCHITECTURE, "classes": ["__background__", "circle", "square", "triangle"],
        "image_size": args.image_size,
        "training": {"data_seed": args.data_seed, "images": args.steps * args.batch_size, "steps": args.steps,
                     "batch_size": args.batch_size, "lr": args.lr, "warmup": args.warmup,
                     "lr_decay_at": [0.8, 0.93], "momentum": 0.9, "weight_decay": 1e-4, "grad_clip": 10.0,
                     "torch_seed": args.torch_seed, "torch": torch.__version__, **training},
        "evaluation": {"data_seed": args.eval_seed, "images": args.eval_images, "box_score_thresh": 0.05,
                       "edudet": {k: round(float(ed[k]), 4) for k in keys},
                       "torchvision": {k: round(float(tv[k]), 4) for k in keys},
                       "torchvision_float32_checkpoint": {k: round(float(tv_float32[k]), 4) for k in keys}},
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["evaluation"], indent=2))
    print(f"wrote {npz} ({npz.stat().st_size / 2 ** 20:.1f} MiB) and {out.with_suffix('.json')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--data-seed", type=int, default=1)
    parser.add_argument("--eval-seed", type=int, default=2)
    parser.add_argument("--eval-images", type=int, default=50)
    parser.add_argument("--torch-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--run-dir", default=str(ROOT / "shapes_run"))
    parser.add_argument("--output", default=str(ROOT / "edudet" / "data" / "shapes_maskrcnn"))
    parser.add_argument("--finish", metavar="CHECKPOINT", help="skip training: evaluate and convert this .pth")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.finish:
        checkpoint = Path(args.finish)
    else:
        checkpoint = train(args, run_dir)
    train_record = run_dir / "train.json"
    training = json.loads(train_record.read_text()) if train_record.exists() else {}
    finish(args, checkpoint, run_dir, training)


if __name__ == "__main__":
    main()
