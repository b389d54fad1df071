"""CharacterBench predictions of a small stage-2 model trained in the weight-free latent space.

Three steps, so that only small files travel between the CPU machine (which holds the 512 px ground truth
and the metric weights) and the GPU machine (which holds the trained model):

    # CPU: the model's inputs from the ground truth: each protocol view's A-pose render (the reference)
    # and view 0's pose maps at the protocol frames (the driving 2D pose sequence), on the model canvas
    python scripts/gpu/small_model_predictions.py pack --gt out/board-gt --height 128 --width 192 --out inputs.npz
    # GPU: sample the 9 protocol views in two groups of 5 that share view 0 ([0, 2, 5, 7, 9], [0, 12, 14, 16, 19])
    python scripts/gpu/small_model_predictions.py predict --model out/train/small-multiview --inputs inputs.npz --out outputs.npz
    # CPU: resize the square render area to the ground truth's size, write PNGs
    python scripts/gpu/small_model_predictions.py write --outputs outputs.npz --pred out/preds

Nothing of the ground truth's motion frames enters the inputs: only the A-pose renders, view 0's pose maps
and the cameras, which is what the model is given in training as well.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

GROUP_SIZE = 5  # view 0 + 4, as the model was trained


def _protocol():
    from characterbench.protocol import PROTOCOL_V1

    return PROTOCOL_V1


def view_groups(views: list[int]) -> list[list[int]]:
    """Groups of ``GROUP_SIZE`` views that all start with view 0 (the last group padded with earlier views)."""
    others = [v for v in views if v != 0]
    step = GROUP_SIZE - 1
    groups = []
    for i in range(0, len(others), step):
        chunk = others[i : i + step]
        pad = [v for v in others if v not in chunk][: step - len(chunk)]
        groups.append([0] + chunk + pad)
    return groups


def pack(args: argparse.Namespace) -> int:
    from character4d.format import open_samples

    from reference_model.data import canvas_intrinsics, place_on_canvas

    protocol = _protocol()
    views = list(protocol.views)
    frames = [int(f) for f in args.frames.split(",")] if args.frames else list(protocol.frames)
    keys, refs, poses, Ks, viewmats, sizes = [], [], [], [], [], []
    for sample in open_samples(args.gt, keys=args.keys.split(",") if args.keys else None):
        keys.append(sample.key)
        refs.append([place_on_canvas(sample.apose(v), args.height, args.width, 255) for v in views])
        poses.append([place_on_canvas(sample.pose(0, f), args.height, args.width, 0) for f in frames])
        Ks.append(canvas_intrinsics(sample.cameras.Ks[views], sample.resolution, args.height, args.width))
        viewmats.append(sample.cameras.viewmats[views])
        sizes.append(sample.resolution)
    np.savez_compressed(
        args.out, keys=np.array(keys), views=np.array(views), frames=np.array(frames),
        reference=np.array(refs, dtype=np.uint8), poses=np.array(poses, dtype=np.uint8),
        Ks=np.array(Ks, dtype=np.float32), viewmats=np.array(viewmats, dtype=np.float32), resolution=np.array(sizes),
    )
    print(f"packed {len(keys)} samples ({', '.join(keys)}) into {args.out}")
    return 0


def predict(args: argparse.Namespace) -> int:
    import torch
    from diffusers import CogVideoXDDIMScheduler

    from reference_model.codec import SpaceToDepthCodec
    from reference_model.data import to_model_range
    from reference_model.training.config import TrainConfig
    from reference_model.training.sampling import sample_latents
    from reference_model.training.trainer import TextConditioner, batch_rays, load_trained_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = TrainConfig.from_json(json.loads((Path(args.model) / "config.json").read_text()))
    model = load_trained_model(args.model, device).eval()
    codec = SpaceToDepthCodec(config.codec_factor)
    scheduler = CogVideoXDDIMScheduler(**config.scheduler)
    tcfg = model.transformer.config
    text = TextConditioner(None, tcfg.max_text_seq_length, tcfg.text_embed_dim, device)
    data = np.load(args.inputs)
    views = [int(v) for v in data["views"]]
    n, _, height, width = data["reference"].shape[:4]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    # Only the square render area is kept (the canvas margins are padding).
    out = np.zeros((n, len(views), len(data["frames"]), side, side, 3), dtype=np.uint8)
    gen = torch.Generator(device).manual_seed(args.seed)
    started = time.perf_counter()
    for i in range(n):
        done: set[int] = set()
        for group in view_groups(views):
            idx = [views.index(v) for v in group]
            ref = torch.from_numpy(data["reference"][i, idx]).permute(0, 3, 1, 2)[None]  # [1, V, 3, H, W]
            pose = torch.from_numpy(data["poses"][i]).permute(0, 3, 1, 2)  # [F, 3, H, W], view 0's
            pose = pose[None, None].expand(1, len(group), *pose.shape)
            ref_lat = codec.encode_video(to_model_range(ref.to(device)).flatten(0, 1)[:, None])[None]
            black = torch.zeros_like(ref)  # an A-pose reference comes with a black pose map, as in training
            ref_pose = codec.encode_video(to_model_range(black.to(device)).flatten(0, 1)[:, None])[None]
            pose_lat = codec.encode_video(to_model_range(pose.to(device)).flatten(0, 1))[None]
            pose_lat = torch.cat([ref_pose, pose_lat], dim=2)
            batch = {"Ks": torch.from_numpy(data["Ks"][i, idx])[None], "viewmats": torch.from_numpy(data["viewmats"][i, idx])[None]}
            rays = batch_rays(batch, height, width).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                lat = sample_latents(model, scheduler, text([""]), ref_lat, pose_lat, rays, args.steps, gen)
            video = codec.decode_video(lat[0].float()).clamp(-1, 1)  # [V, F, 3, H, W]
            video = video[..., top : top + side, left : left + side]
            video = ((video + 1) * 127.5).round().byte().permute(0, 1, 3, 4, 2).cpu().numpy()
            for j, v in zip(idx, group):
                if v not in done:  # view 0 of the first group is kept
                    out[i, j] = video[group.index(v)]
                    done.add(v)
    seconds = time.perf_counter() - started
    np.savez_compressed(args.out, keys=data["keys"], views=data["views"], frames=data["frames"], frames_rgb=out,
                        resolution=data["resolution"], seconds=np.array(seconds), steps=np.array(args.steps))
    print(f"predicted {n} samples x {len(views)} views x {len(data['frames'])} frames in {seconds:.1f} s on {device}")
    return 0


def write(args: argparse.Namespace) -> int:
    from PIL import Image

    from characterbench.predictions import cell_path

    data = np.load(args.outputs)
    pred = Path(args.pred)
    if pred.exists():
        print(f"{pred} already exists; choose a new folder", file=sys.stderr)
        return 1
    views = [int(v) for v in data["views"]]
    # The cells are named by the protocol's frame indices; inputs packed from renders with other frame
    # indices (9 frames at 5 fps are the times of frames 0, 3, ..., 24 at 15 fps) give them here.
    frames = [int(f) for f in args.frames.split(",")] if args.frames else [int(f) for f in data["frames"]]
    rgb = data["frames_rgb"]  # [N, V, F, S, S, 3]: the square render area of the canvas
    for i, key in enumerate(data["keys"]):
        res = int(args.size or data["resolution"][i])
        for a, v in enumerate(views):
            for b, f in enumerate(frames):
                image = Image.fromarray(rgb[i, a, b]).resize((res, res), Image.Resampling.BICUBIC)
                path = cell_path(pred, str(key), (v, f))
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path)
    print(f"wrote {len(data['keys'])} samples x {len(views)} views x {len(frames)} frames to {pred}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("pack", help="model inputs from the ground truth (CPU)")
    p.add_argument("--gt", required=True)
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--frames", help="comma-separated frame indices (default: the protocol's)")
    p.add_argument("--keys", help="comma-separated sample keys (default: all)")
    p.add_argument("--out", required=True)
    p = sub.add_parser("predict", help="sample the multi-view videos (GPU or CPU)")
    p.add_argument("--model", required=True, help="a training output dir (config.json + model/)")
    p.add_argument("--inputs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("write", help="PNG prediction folder at the ground truth's size (CPU)")
    p.add_argument("--outputs", required=True)
    p.add_argument("--size", type=int, help="side of the written images (default: the inputs' ground-truth resolution)")
    p.add_argument("--frames", help="comma-separated frame indices the cells are named by (default: the inputs')")
    p.add_argument("--pred", required=True)
    args = parser.parse_args(argv)
    return {"pack": pack, "predict": predict, "write": write}[args.verb](args)


if __name__ == "__main__":
    sys.exit(main())
