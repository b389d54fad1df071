"""Weights: CogVideoX I2V -> stage 1, stage 1 -> stage 2, the released layout, save/load round trips."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel
from safetensors.torch import save_file
from torch import nn

from reference_model.camera import CameraEncoder
from reference_model.checkpoints import (
    CheckpointError,
    CheckpointNotFoundError,
    convert_charactershot,
    load_cogvideox_i2v_transformer,
    load_pipeline,
    split_released_state_dict,
    stage2_from_stage1,
)
from reference_model.transformer import PoseTransformer3DModel
from reference_model.transformer_multiview import MultiViewTransformer3DModel
from tests.reference_model.test_transformer import _inputs as stage1_inputs
from tests.reference_model.test_transformer_multiview import _inputs as stage2_inputs
from tests.reference_model.tiny_models import TINY_TRANSFORMER, tiny_camera_encoder, tiny_pipeline, tiny_stage2

TINY_I2V = {**TINY_TRANSFORMER, "use_rotary_positional_embeddings": True, "use_learned_positional_embeddings": True}


def _released_camera_guider(seed: int = 0) -> nn.Module:
    """The released CameraGuider (charactershot/models/camera_guider.py: ``self.layer = Sequential(...)``),
    with out_dim = the tiny width."""
    torch.manual_seed(seed)
    c = 16
    layers = [nn.Conv2d(6, c, 3, 1, 1), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1),
              nn.SiLU(), nn.Conv2d(c, c, 3, 2, 1), nn.SiLU(), nn.Conv2d(c, c, 3, 2, 1), nn.SiLU(),
              nn.Conv2d(c, c, 3, 2, 1), nn.SiLU(), nn.Conv2d(c, 32, 2, 2, 0)]  # fmt: skip
    guider = nn.Module()
    guider.layer = nn.Sequential(*layers)
    return guider


def test_cogvideox_i2v_folder_loads_into_stage1(tmp_path):
    torch.manual_seed(0)
    reference = CogVideoXTransformer3DModel(**TINY_I2V).eval()
    reference.save_pretrained(tmp_path / "transformer", max_shard_size="20KB")  # sharded, like the 5B folder
    assert (tmp_path / "transformer" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    model = load_cogvideox_i2v_transformer(tmp_path)
    assert isinstance(model, PoseTransformer3DModel) and model.config.use_learned_positional_embeddings
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    x = stage1_inputs()
    reference.patch_embed.use_learned_positional_embeddings = False
    with torch.no_grad():
        packed = torch.cat([torch.cat([x["reference_latents"], x["hidden_states"]], 1), x["pose_latents"]], 2)
        rope = model.rotary_embeddings(3, 4, 6)
        expected = reference(packed, x["encoder_hidden_states"], x["timestep"], image_rotary_emb=rope).sample[:, 1:]
        torch.testing.assert_close(model(**x).sample, expected, rtol=0, atol=1e-6)
    stage2 = stage2_from_stage1(model)
    assert isinstance(stage2, MultiViewTransformer3DModel)


def test_missing_or_wrong_cogvideox_checkpoints_say_what_to_do(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="THUDM/CogVideoX-5b-I2V"):
        load_cogvideox_i2v_transformer(tmp_path / "nowhere")
    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "config.json").write_text(json.dumps({**TINY_I2V, "_class_name": "CogVideoXTransformer3DModel"}))
    with pytest.raises(CheckpointNotFoundError, match="diffusion_pytorch_model"):
        load_cogvideox_i2v_transformer(tmp_path)
    torch.manual_seed(0)
    CogVideoXTransformer3DModel(**{**TINY_I2V, "in_channels": 4}).save_pretrained(tmp_path / "t2v" / "transformer")
    with pytest.raises(CheckpointError, match="image-to-video"):
        load_cogvideox_i2v_transformer(tmp_path / "t2v")


def _write_released_layout(root, transformer_state, extra_key=None):
    """A synthetic folder in the released CharacterShot layout (DESIGN.md 8.2.1)."""
    pipe = tiny_pipeline()
    for name in ("tokenizer", "text_encoder", "vae", "scheduler"):
        getattr(pipe, name).save_pretrained(root / name)
    (root / "transformer").mkdir(parents=True)
    config = {k: v for k, v in pipe.transformer.config.items() if not k.startswith("_") and k != "apply_learned_positional_embeddings"}
    config = {"_class_name": "CogVideoXTransformer4DModel", "_diffusers_version": "0.32.1", **config}
    (root / "transformer" / "config.json").write_text(json.dumps(config))
    state = dict(transformer_state)
    if extra_key:
        state[extra_key] = torch.zeros(2)
    save_file({k: v.contiguous() for k, v in state.items()}, root / "transformer" / "diffusion_pytorch_model.safetensors")
    torch.save(_released_camera_guider().state_dict(), root / "camera_guider.pt")
    (root / "camera_embs").mkdir()
    for v in range(21):
        torch.save(torch.zeros(6, 32, 48), root / "camera_embs" / f"{v}.pt")


def test_released_layout_converts_every_key_and_nothing_is_left_over(tmp_path):
    source = tiny_stage2(seed=7, perturb_view_branch=True).state_dict()
    guider = _released_camera_guider().state_dict()
    _write_released_layout(tmp_path / "released", source)
    report = convert_charactershot(tmp_path / "released", tmp_path / "converted")
    assert report.transformer_keys == len(source) and report.camera_keys == len(guider) == 14
    assert report.copied == ("tokenizer", "text_encoder", "vae", "scheduler")
    for folder in (tmp_path / "converted", tmp_path / "released"):  # converted folder, and in memory
        pipe = load_pipeline(folder)
        got = pipe.transformer.state_dict()
        assert set(got) == set(source) and all(torch.equal(got[k], source[k]) for k in source)
        cam = pipe.camera_encoder.state_dict()
        assert set(cam) == set(guider) and all(torch.equal(cam[k], guider[k]) for k in guider)
        assert pipe.camera_encoder.config.out_channels == 32
    with pytest.raises(FileExistsError):
        convert_charactershot(tmp_path / "released", tmp_path / "converted")


def test_a_key_that_fits_no_model_is_an_error(tmp_path):
    source = tiny_stage2().state_dict()
    _write_released_layout(tmp_path / "released", source, extra_key="transformer_blocks.0.view_norm2.linear.weight")
    with pytest.raises(CheckpointError, match="view_norm2"):
        convert_charactershot(tmp_path / "released", tmp_path / "converted")
    assert not (tmp_path / "converted").exists()
    with pytest.raises(CheckpointNotFoundError, match="Gaojunyao/CharacterShot"):
        load_pipeline(tmp_path / "nothing-here")


def test_training_state_dict_of_the_combined_module_splits():
    transformer = tiny_stage2().state_dict()
    guider = _released_camera_guider().state_dict()
    combined = {f"transformer.{k}": v for k, v in transformer.items()} | {f"camera_guider.{k}": v for k, v in guider.items()}
    t, c = split_released_state_dict({"module": combined})
    assert set(t) == set(transformer) and set(c) == set(guider)
    with pytest.raises(CheckpointError, match="optimizer_step"):
        split_released_state_dict({**combined, "optimizer_step": torch.zeros(1)})


def test_save_pretrained_from_pretrained_round_trips(tmp_path):
    x = stage2_inputs()
    for model, kwargs in ((tiny_stage2(perturb_view_branch=True), x), (tiny_camera_encoder(), None)):
        model.save_pretrained(tmp_path / type(model).__name__)
        loaded = type(model).from_pretrained(tmp_path / type(model).__name__).eval()
        public = lambda c: {k: v for k, v in c.items() if not k.startswith("_")}  # noqa: E731
        assert public(loaded.config) == public(model.config)
        with torch.no_grad():
            if kwargs is None:
                rays = torch.randn(2, 6, 32, 48)
                torch.testing.assert_close(loaded(rays), model(rays), rtol=0, atol=0)
            else:
                torch.testing.assert_close(loaded(**kwargs).sample, model(**kwargs).sample, rtol=0, atol=0)
    assert isinstance(CameraEncoder.from_pretrained(tmp_path / "CameraEncoder"), CameraEncoder)
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = load_pipeline(tmp_path / "pipe")
    from tests.reference_model.tiny_models import tiny_inputs

    for p in (pipe, loaded):
        p.set_progress_bar_config(disable=True)
    run = lambda p: p(**tiny_inputs(), prompt="a character", num_inference_steps=1, group_size=2,  # noqa: E731
                      output_type="latent", generator=torch.Generator().manual_seed(0)).frames  # fmt: skip
    torch.testing.assert_close(run(loaded), run(pipe), rtol=0, atol=0)
