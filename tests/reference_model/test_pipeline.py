"""CharacterShotPipeline with tiny random components: grouping, conditioning, determinism, inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.utils.torch_utils import randn_tensor

from reference_model.pipeline import view_groups, to_canvas
from tests.reference_model.tiny_models import tiny_inputs, tiny_pipeline

# inference/cli_demo_4d.py of the released code, written out.
RELEASED_GROUPS = [[0, 1, 6, 11, 16], [0, 2, 7, 12, 17], [0, 3, 8, 13, 18], [0, 4, 9, 14, 19], [0, 5, 10, 15, 20]]


@pytest.fixture(scope="module")
def pipe():
    p = tiny_pipeline()
    p.set_progress_bar_config(disable=True)
    return p


def _run(pipe, seed=0, **kw):
    args = dict(tiny_inputs(), prompt="a character walks", num_inference_steps=2, group_size=2,
                generator=torch.Generator().manual_seed(seed))  # fmt: skip
    args.update(kw)
    return pipe(**args)


def test_view_groups():
    assert view_groups(21, 5) == RELEASED_GROUPS
    assert view_groups(3, 2) == [[0, 1], [0, 2]]
    assert view_groups(5, 5) == [[0, 1, 2, 3, 4]]
    assert view_groups(6, 3) == [[0, 1, 4], [0, 2, 5], [0, 3]]
    covered = sorted({v for g in view_groups(21, 4) for v in g})
    assert covered == list(range(21))
    with pytest.raises(ValueError, match="group_size"):
        view_groups(4, 1)


def test_to_canvas_centres_and_composites():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    canvas = to_canvas(rgba, height=4, width=8, background=1.0)
    assert canvas.shape == (4, 8, 3)
    np.testing.assert_allclose(canvas[:, :2], 1.0)
    np.testing.assert_allclose(canvas[:, 6:], 1.0)
    np.testing.assert_allclose(canvas[:2, 2:6], [[[1.0, 0.0, 0.0]] * 4] * 2)
    np.testing.assert_allclose(canvas[2:, 2:6], 1.0)
    with pytest.raises(ValueError, match="square"):
        to_canvas(np.zeros((4, 5, 3)))


def test_deterministic_with_a_seed_and_output_layout(pipe):
    a = _run(pipe, seed=3)
    b = _run(pipe, seed=3)
    assert a.frames.shape == (3, 9, 32, 32, 3) and a.groups == [[0, 1], [0, 2]]
    assert a.frames.dtype == np.float32 and 0 <= a.frames.min() and a.frames.max() <= 1
    np.testing.assert_array_equal(a.frames, b.frames)
    c = _run(pipe, seed=3, output_type="latent").frames
    d = _run(pipe, seed=4, output_type="latent").frames
    with torch.no_grad():
        torch.testing.assert_close(pipe.decode_latents(c).permute(0, 1, 3, 4, 2).numpy(), a.frames)
    assert (c - d).abs().max() > 1e-3


def test_targets_start_from_noise_reference_stays_clean_guidance_batched(pipe):
    calls = []

    def spy(module, args, kwargs):
        calls.append({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()})
        calls[-1]["hidden_states"] = args[0].clone()

    handle = pipe.transformer.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        _run(pipe, seed=5, num_inference_steps=2, output_type="latent")
    finally:
        handle.remove()
    assert len(calls) == 2 * 2  # 2 groups x 2 steps, guidance in one batch
    first = calls[0]
    x = first["hidden_states"]
    assert x.shape == (2, 2, 3, 4, 4, 4)  # (guidance halves, views of group 0, target latent frames, ...)
    # Every target latent frame of the first input is the seeded noise (the released code put the clean
    # reference into the last frame instead).
    noise = randn_tensor((1, 2, 3, 4, 4, 4), generator=torch.Generator().manual_seed(5), dtype=torch.float32)
    torch.testing.assert_close(x[0:1], noise * pipe.scheduler.init_noise_sigma)
    torch.testing.assert_close(x[0], x[1])
    # The reference enters clean: the VAE latents of the reference images of the group's views.
    images = torch.from_numpy(tiny_inputs()["images"])
    expected = pipe.encode_video(images[[0, 1]].unsqueeze(1))
    torch.testing.assert_close(first["reference_latents"][0], expected)
    torch.testing.assert_close(calls[2]["reference_latents"][0][1], pipe.encode_video(images[[2]].unsqueeze(1))[0])
    # Negative prompt first, prompt second; camera tokens of the group's own views.
    text = first["encoder_hidden_states"]
    assert not torch.equal(text[0], text[1])
    assert first["camera_tokens"].shape == (2, 2, 4, 32)
    torch.testing.assert_close(calls[0]["camera_tokens"][0, 0], calls[2]["camera_tokens"][0, 0])  # view 0 in both
    assert not torch.equal(calls[0]["camera_tokens"][0, 1], calls[2]["camera_tokens"][0, 1])


def test_without_guidance_one_batch_and_view0_from_the_first_group(pipe):
    seen = []
    handle = pipe.transformer.register_forward_pre_hook(lambda m, a, k: seen.append(a[0].shape[0]), with_kwargs=True)
    try:
        out = _run(pipe, guidance_scale=1.0, output_type="latent")
    finally:
        handle.remove()
    assert set(seen) == {1}
    assert out.frames.shape == (3, 3, 4, 4, 4)


def test_dpm_scheduler_is_seeded_too(pipe):
    from diffusers import CogVideoXDPMScheduler

    ddim = pipe.scheduler
    pipe.scheduler = CogVideoXDPMScheduler.from_config(ddim.config)
    try:
        a, b = (_run(pipe, seed=9, output_type="latent", use_dynamic_cfg=True).frames for _ in range(2))
    finally:
        pipe.scheduler = ddim
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_stage1_pipeline_generates_each_view_alone():
    p = tiny_pipeline(stage=1)
    p.set_progress_bar_config(disable=True)
    out = _run(p, output_type="pt")
    assert out.groups == [[0], [1], [2]]
    assert out.frames.shape == (3, 9, 3, 32, 32)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(poses=np.zeros((5, 3, 32, 32), np.float32)), "1 \\+ 8 m frames"),
        (dict(images=np.full((3, 3, 32, 32), 2.0, np.float32)), "\\[0, 1\\]"),
        (dict(images=np.zeros((3, 3, 24, 32), np.float32)), "multiples"),
        (dict(cameras=None), "cameras"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(poses=np.zeros((2, 9, 3, 32, 32), np.float32)), "one sequence per image"),
        (dict(output_type="gif"), "output_type"),
    ],
)
def test_bad_inputs_name_the_argument(pipe, change, message):
    with pytest.raises(ValueError, match=message):
        _run(pipe, **change)
