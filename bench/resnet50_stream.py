"""ResNet-50 on real JPEGs read from disk against the same steps on synthetic data in memory (#30's GPU target:
within 10%, the GPU never waits on data).

Writes an image folder of ImageNet-like JPEGs (``--images`` of about 400x350, 10 classes; reused when present: the
folder of bench/image_stream.py), then times lth's engine (bench/_common.time_engine: seconds per step between two
evaluations, less the evaluation) training ``--model`` at ``--batch`` on

- **real**: ``--dataset imagefolder`` on the folder (random-resized crop to ``--image-size`` + flip), once per
  decoder in ``--decoders`` (``dali``: NVIDIA DALI, nvJPEG on a GPU; ``pillow``: ``--workers`` DataLoader workers);
- **synthetic**: random tensors of the same shape held on the device (no decoding at all).

Prints one JSON document: seconds per step and images per second of each, and ``real_over_synthetic`` per decoder
(1.0 = data costs nothing; the target is <= 1.10).

  python bench/resnet50_stream.py --device cuda                       # the GPU target (batch 256, ResNet-50)
  python bench/resnet50_stream.py --device cuda --decoders pillow     # where DALI cannot be installed
  python bench/resnet50_stream.py --device cpu --model fc_16 --batch 16 --image-size 32 --steps 3 --images 300
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _common import device_info, time_engine
from image_stream import make_folder

from lth.engine import dali
from lth.spec import DataHparams, ModelHparams, TrainHparams, TrainSpec


def spec(model: str, data: DataHparams) -> TrainSpec:
    """ResNet-50's ImageNet step (SGD with momentum, as the resnet50_imagenet preset) on ``data``."""
    return TrainSpec(data, ModelHparams(model=model),
                     TrainHparams(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", default="imagenet_resnet_50")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--folder", default="/tmp/lth_bench_images")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (after as many warm-up steps)")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers / DALI threads (default: CPUs)")
    ap.add_argument("--decoders", nargs="+", default=["dali", "pillow"])
    args = ap.parse_args()
    device = torch.device(args.device)
    folder = make_folder(Path(args.folder), args.images)
    s = args.image_size
    out: dict = {"bench": "resnet50_stream", **device_info(device), "model": args.model, "batch": args.batch,
                 "image_size": s, "images": args.images, "steps": args.steps, "workers": args.workers,
                 "seconds_per_step": {}}
    synthetic = DataHparams(dataset="synthetic", batch_size=args.batch, synthetic_shape=(3, s, s),
                            synthetic_classes=10, synthetic_size=max(args.batch * 4, 1024), validation_size=0)
    out["seconds_per_step"]["synthetic"] = time_engine(spec(args.model, synthetic), 1, args.steps,
                                                       args.steps, device)
    real = DataHparams(dataset="imagefolder", batch_size=args.batch, augment=True, image_size=s, validation_size=0)
    for decoder in args.decoders:
        if decoder == "dali" and not dali.available():
            out["seconds_per_step"]["real_dali"] = "DALI is not installed (pip install 'lth[dali]')"
            continue
        out["seconds_per_step"][f"real_{decoder}"] = time_engine(
            spec(args.model, real), 1, args.steps, args.steps, device, data_dir=str(folder),
            decoder=decoder, loader_workers=args.workers)
    base = out["seconds_per_step"]["synthetic"]
    out["images_per_second"] = {k: round(args.batch / v, 1) for k, v in out["seconds_per_step"].items()
                                if isinstance(v, float)}
    out["real_over_synthetic"] = {k: round(v / base, 3) for k, v in out["seconds_per_step"].items()
                                  if isinstance(v, float) and k != "synthetic"}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
