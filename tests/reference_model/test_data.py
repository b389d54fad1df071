"""The training data stream over real character4d shards (written here with character4d.format)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from character4d.format import ShardWriter
from reference_model.codec import SpaceToDepthCodec
from reference_model.data import DataConfig, TrainingStream, canvas_intrinsics, place_on_canvas, to_model_range
from tests.character4d.fake_sample import fake_colour, fake_pose_colour, make_fake_sample

VIEWS, FRAMES, SIZE = 7, 6, 16
KEYS = [f"c{i}__m{j}" for i in range(3) for j in range(2)]  # 6 samples in 2 shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("c4d") / "shards"
    for part, keys in enumerate((KEYS[:3], KEYS[3:])):
        with ShardWriter(root / f"c4d-{part:04d}.tar") as writer:
            for key in keys:
                writer.write(make_fake_sample(key, views=VIEWS, frames=FRAMES, size=SIZE, solid=True,
                                              depth=False, mask=False))
    return root


def config(root, **kw) -> DataConfig:
    base = dict(root=str(root), stage="multiview", height=SIZE, width=24, num_frames=3, num_views=4, batch_size=2)
    return DataConfig(**{**base, **kw})


def colour_of(image: torch.Tensor) -> tuple[int, ...]:
    """The colour at the centre of a [3, H, W] uint8 image."""
    return tuple(int(c) for c in image[:, image.shape[1] // 2, image.shape[2] // 2])


def test_multiview_example_content(shards):
    stream = TrainingStream(config(shards, apose_reference_prob=0.0, multiview_pose="per_view"))
    batch = stream.batch(0)
    b, v, f, h, w = 2, 4, 3, SIZE, 24
    assert batch["video"].shape == (b, v, f, 3, h, w) and batch["video"].dtype == torch.uint8
    assert batch["poses"].shape == (b, v, f, 3, h, w)
    assert batch["reference"].shape == batch["reference_pose"].shape == (b, v, 3, h, w)
    assert batch["Ks"].shape == (b, v, 3, 3) and batch["viewmats"].shape == (b, v, 4, 4)
    for i in range(b):
        views, frames = batch["views"][i].tolist(), batch["frames"][i].tolist()
        assert views[0] == 0 and len(set(views)) == v  # view 0 always, distinct views
        assert frames == list(range(frames[0], frames[0] + f))  # consecutive frames of the clip
        ref = int(batch["reference_frame"][i])
        assert ref in frames  # the reference is drawn from the clip
        for a, view in enumerate(views):
            for c, frame in enumerate(frames):
                assert colour_of(batch["video"][i, a, c]) == fake_colour(view, frame)
                assert colour_of(batch["poses"][i, a, c]) == fake_pose_colour(view, frame)
            assert colour_of(batch["reference"][i, a]) == fake_colour(view, ref)
            assert colour_of(batch["reference_pose"][i, a]) == fake_pose_colour(view, ref)
    # square renders centred without stretching: 4 px margins each side, white for images, black for poses
    assert (batch["video"][..., :4] == 255).all() and (batch["video"][..., 20:] == 255).all()
    assert (batch["poses"][..., :4] == 0).all() and (batch["poses"][..., 20:] == 0).all()
    assert (batch["reference"][..., :4] == 255).all() and (batch["reference_pose"][..., 20:] == 0).all()


def test_front_pose_and_apose_reference(shards):
    stream = TrainingStream(config(shards, apose_reference_prob=1.0, multiview_pose="front"))
    batch = stream.batch(3)
    for i in range(2):
        assert int(batch["reference_frame"][i]) == -1
        for a, view in enumerate(batch["views"][i].tolist()):
            assert colour_of(batch["reference"][i, a]) == fake_colour(view, None)  # the A-pose render
            for c, frame in enumerate(batch["frames"][i].tolist()):
                assert colour_of(batch["poses"][i, a, c]) == fake_pose_colour(0, frame)  # view 0's pose
    assert (batch["reference_pose"] == 0).all()  # no pose map exists for the A-pose: black


def test_stage_2d_reference_varies_over_the_clip(shards):
    stream = TrainingStream(config(shards, stage="2d", num_frames=FRAMES, batch_size=6, random_start=False))
    refs = set()
    for j in range(6):
        batch = stream.batch(j)
        assert batch["video"].shape[1] == 1
        refs.update(int(r) for r in batch["reference_frame"])
    assert len(refs) >= 4  # drawn at random, not always the first frame


def test_rgba_composited_on_white_and_resized_without_stretch():
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[2:6, 2:6] = (10, 20, 30, 255)  # opaque square on a transparent background
    rgba[0, 0] = (0, 0, 0, 128)  # half-transparent black pixel
    canvas = place_on_canvas(rgba, 4, 6, 255)  # shrink 8 -> 4 by area averaging, pad 1 px each side
    assert canvas.shape == (4, 6, 3)
    assert (canvas[:, 0] == 255).all() and (canvas[:, 5] == 255).all()
    # pixel (1, 1) of the 4 x 4 render averages source pixels 2-3 x 2-3: the opaque colour
    assert tuple(canvas[1, 2]) == (10, 20, 30)
    # pixel (0, 0) averages one half-black pixel with three white ones: (0.5 * 0 + 0.5 * 255 + 3 * 255) / 4
    assert canvas[0, 1, 0] == round((127.5 + 3 * 255) / 4)


def test_canvas_intrinsics_follow_the_pixels():
    from character4d.cameras import RigConfig, project, rig_cameras

    cams = rig_cameras(RigConfig(num_views=3, resolution=512))
    Ks = canvas_intrinsics(cams.Ks, 512, 480, 720)
    point = np.array([[0.1, -0.2, 1.1]])
    uv512, _ = project(point, cams.viewmats[1], cams.Ks[1])
    uv, _ = project(point, cams.viewmats[1], Ks[1])
    np.testing.assert_allclose(uv, uv512 * 480 / 512 + np.array([120.0, 0.0]), atol=1e-9)


def test_ranks_see_disjoint_samples_and_workers_do_not_change_the_stream(shards):
    cfg = config(shards, batch_size=1)
    ranks = [TrainingStream(cfg, rank=r, world_size=2) for r in range(2)]
    per_epoch = len(KEYS) // 2  # batches per rank per epoch
    seen = [[ranks[r].batch(j)["key"][0] for j in range(per_epoch)] for r in range(2)]
    assert set(seen[0]).isdisjoint(seen[1]) and sorted(seen[0] + seen[1]) == sorted(KEYS)
    # a DataLoader with 2 workers yields exactly the single-process stream, from any start
    loader = torch.utils.data.DataLoader(TrainingStream(cfg, rank=1, world_size=2, start_batch=1), batch_size=None,
                                         num_workers=2)
    it = iter(loader)
    for j in range(1, 5):
        batch = next(it)
        expected = ranks[1].batch(j)
        assert batch["key"] == expected["key"]
        assert torch.equal(batch["video"], expected["video"]) and torch.equal(batch["views"], expected["views"])


def test_excluded_keys_and_bad_configs(shards):
    stream = TrainingStream(config(shards, exclude_keys=("c0__m0", "c1__m1")))
    assert set(stream.index.keys) == set(KEYS) - {"c0__m0", "c1__m1"}
    with pytest.raises(ValueError, match="stage"):
        DataConfig(root=str(shards), stage="3d")
    too_long = TrainingStream(config(shards, num_frames=FRAMES + 1))
    with pytest.raises(ValueError, match="frames"):
        too_long.batch(0)


def test_space_to_depth_codec_is_exact_and_blockwise():
    codec = SpaceToDepthCodec(8)
    video = to_model_range(torch.randint(0, 256, (2, 3, 3, 16, 24), dtype=torch.uint8))
    latents = codec.encode_video(video)
    assert latents.shape == (2, 3, 192, 2, 3)
    assert torch.equal(codec.decode_video(latents), video)
    # channel (c * 64 + dy * 8 + dx) of latent pixel (i, j) is pixel (8 i + dy, 8 j + dx) of channel c
    assert latents[1, 2, 2 * 64 + 3 * 8 + 5, 1, 2] == video[1, 2, 2, 8 + 3, 16 + 5]
    with pytest.raises(ValueError, match="multiples"):
        codec.encode_video(video[..., :15, :])


def test_cogvideox_vae_codec_layout_and_scaling():
    from diffusers import AutoencoderKLCogVideoX

    from reference_model.codec import CogVideoXVAECodec

    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        block_out_channels=(8, 16), latent_channels=4, down_block_types=("CogVideoXDownBlock3D",) * 2,
        up_block_types=("CogVideoXUpBlock3D",) * 2, layers_per_block=1, norm_num_groups=4, sample_height=16,
        sample_width=16,
    ).eval()  # a tiny random VAE: the real weights cannot be had here
    codec = CogVideoXVAECodec(vae, sample=False)
    video = torch.rand(1, 5, 3, 16, 24) * 2 - 1
    latents = codec.encode_video(video)
    assert latents.shape == (1, codec.latent_frames(5), 4, 8, 12)
    with torch.no_grad():  # diffusers' own call, in its [B, C, F, H, W] layout
        expected = vae.encode(video.permute(0, 2, 1, 3, 4)).latent_dist.mode() * vae.config.scaling_factor
        decoded = vae.decode(expected / vae.config.scaling_factor).sample
    torch.testing.assert_close(latents, expected.permute(0, 2, 1, 3, 4))
    torch.testing.assert_close(codec.decode_video(latents), decoded.permute(0, 2, 1, 3, 4))
    assert codec.encode_image(video[:, 0]).shape == (1, 1, 4, 8, 12)
