"""Training: the loss, learning on a fixed batch, exact resume, the CLI, and 2-process data parallelism."""

from __future__ import annotations

import copy
import json
import os
import socket

import numpy as np
import pytest
import torch

from character4d.format import ShardWriter
from reference_model.training.config import COGVIDEOX_SCHEDULER, TrainConfig, load_config
from reference_model.training.loss import diffusion_loss
from tests.character4d.fake_sample import make_fake_sample

# The tiny models are narrower than the values each token predicts (the trainer warns; intended here).
pytestmark = pytest.mark.filterwarnings("ignore:model. width:UserWarning")

# Canvas 32 x 48 with the 8x space-to-depth codec and patch 2: 2 x 3 tokens per frame, which is also what
# the camera encoder (stride 16) gives, as at full size (480 x 720 -> 30 x 45).
TINY_MODEL = dict(
    num_attention_heads=2, attention_head_dim=16, in_channels=384, out_channels=192, time_embed_dim=8,
    text_embed_dim=12, max_text_seq_length=4, num_layers=2, sample_height=4, sample_width=6, sample_frames=3,
    temporal_compression_ratio=1, use_learned_positional_embeddings=False,
)  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models: intra-op threads only add contention on a shared 2-core machine (~9x slower here).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shard_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("c4d_train")
    with ShardWriter(root / "c4d-0000.tar") as writer:
        for i, key in enumerate(["a__x", "a__y", "b__x", "b__y"]):
            writer.write(make_fake_sample(key, views=6, frames=4, size=32, seed=i, depth=False, mask=False))
    return root


def tiny_config(root, out, stage="2d", **kw) -> TrainConfig:
    data = dict(root=str(root), stage=stage, height=32, width=48, num_frames=3, num_views=3, batch_size=2,
                apose_reference_prob=0.5, decode=True)
    data.update(kw.pop("data", {}))
    obj = dict(stage=stage, data=data, model=TINY_MODEL, camera_encoder=dict(hidden_channels=4), learning_rate=1e-3,
               warmup_steps=0, max_steps=4, mixed_precision="no", gradient_checkpointing=False, checkpoint_every=2,
               keep_checkpoints=3, log_every=1, num_workers=0, output_dir=str(out))
    obj.update(kw)
    return TrainConfig.from_json(obj)


# --------------------------------------------------------------------------------------------- loss


def test_loss_is_v_mse_and_ignores_the_reference_frame():
    from diffusers import CogVideoXDDIMScheduler

    alphas = CogVideoXDDIMScheduler(**COGVIDEOX_SCHEDULER).alphas_cumprod
    g = torch.Generator().manual_seed(0)
    n, f = 3, 4
    x0 = torch.randn(n, f, 5, 2, 2, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 500, 999])
    a = alphas[t].reshape(n, 1, 1, 1, 1).double()
    noisy = (a.sqrt() * x0 + (1 - a).sqrt() * eps).float()  # by hand, not through the scheduler
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    pred = torch.randn(n, 1 + f, 5, 2, 2, generator=g)  # frame 0 = the reference frame's output
    loss = diffusion_loss(pred, noisy, x0, t, alphas, reference_frames=1)
    expected = ((pred[:, 1:].double() - v) ** 2).flatten(1).mean(1).mean()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-4, atol=1e-6)
    changed = pred.clone()
    changed[:, 0] = 1e3 * torch.randn(changed[:, 0].shape, generator=g)
    assert diffusion_loss(changed, noisy, x0, t, alphas, reference_frames=1) == loss
    # an exact prediction costs nothing
    exact = torch.cat([pred[:, :1], v.float()], dim=1)
    assert diffusion_loss(exact, noisy, x0, t, alphas, reference_frames=1) < 1e-8
    with pytest.raises(ValueError, match="equal shapes"):
        diffusion_loss(pred, noisy, x0, t, alphas, reference_frames=0)


def test_tiny_model_learns_a_fixed_batch(shard_root, tmp_path):
    from diffusers import CogVideoXDDIMScheduler

    from reference_model.codec import SpaceToDepthCodec
    from reference_model.data import TrainingStream
    from reference_model.training.trainer import TextConditioner, build_model, training_loss

    config = tiny_config(shard_root, tmp_path, reference_noise=None)
    model = build_model(config)
    codec, scheduler = SpaceToDepthCodec(8), CogVideoXDDIMScheduler(**config.scheduler)
    text = TextConditioner(None, 4, 12)
    batch = TrainingStream(config.data).batch(0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def fixed_loss() -> float:  # the same timesteps and noise every time
        with torch.no_grad():
            return float(sum(training_loss(model, batch, codec, text, scheduler, config,
                                           torch.Generator().manual_seed(s), torch.device("cpu")) for s in range(4)))

    before = fixed_loss()
    gen = torch.Generator().manual_seed(1)
    for _ in range(300):
        loss = training_loss(model, batch, codec, text, scheduler, config, gen, torch.device("cpu"))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_loss()
    assert after < 0.5 * before, (before, after)  # 5.39 -> 1.99 here


# --------------------------------------------------------------------------------------------- resume


def _log(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_resume_takes_bit_identical_steps(shard_root, tmp_path):
    from reference_model.training.trainer import Trainer, load_trained_model

    straight = tmp_path / "straight"
    Trainer(tiny_config(shard_root, straight, stage="multiview", max_steps=4), cpu=True, progress=False).train()
    resumed = tmp_path / "resumed"
    checkpoint = straight / "checkpoints" / "step-0000002"
    Trainer(tiny_config(shard_root, resumed, stage="multiview", max_steps=4), resume=str(checkpoint), cpu=True,
            progress=False).train()
    a, b = _log(straight), _log(resumed)
    assert [r["step"] for r in b] == [3, 4]
    assert [r["loss"] for r in a[2:]] == [r["loss"] for r in b]
    model_a, model_b = load_trained_model(straight), load_trained_model(resumed)
    for (name, pa), pb in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(pa, pb), name
    with pytest.raises(FileExistsError, match="resume"):
        Trainer(tiny_config(shard_root, straight, stage="multiview"), cpu=True)


# --------------------------------------------------------------------------------------------- CLI


def test_charactershot_train_both_stages(shard_root, tmp_path):
    from reference_model.cli import main
    from reference_model.training.trainer import load_trained_model

    cfg = tiny_config(shard_root, tmp_path / "unused").to_json()
    path = tmp_path / "config.json"
    path.write_text(json.dumps({k: v for k, v in cfg.items() if k != "stage"}))
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    assert main(["train", "--stage", "2d", "--config", str(path), "--output-dir", str(s1), "--cpu", "--quiet",
                 "--set", "max_steps=2", "--set", "sample_every=2", "--set", "sample_steps=2"]) == 0
    assert main(["train", "--stage", "multiview", "--config", str(path), "--output-dir", str(s2), "--cpu", "--quiet",
                 "--init-from", str(s1), "--set", "max_steps=2", "--set", "data.num_views=3"]) == 0
    model = load_trained_model(s2)
    assert model.multiview and len(_log(s2)) == 2
    assert list((s1 / "logs").rglob("events.out.tfevents.*"))  # TensorBoard scalars and the preview
    assert main(["train", "--stage", "2d", "--config", str(tmp_path / "missing.json")]) == 1
    assert main(["train", "--stage", "2d", "--config", str(path), "--set", "bogus=1"]) == 1
    with pytest.raises(ValueError, match="stage"):
        load_config(path, ["stage=\"multiview\""], stage="2d")


# --------------------------------------------------------------------------------------------- 2 processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, root: str, out: str, result: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from reference_model.training.trainer import Trainer, training_loss

    trainer = Trainer(tiny_config(root, out, stage="multiview", data=dict(batch_size=1)), cpu=True, progress=False)
    acc = trainer.accelerator
    stream = trainer.stream()
    keys = [stream.batch(j)["key"][0] for j in range(2)]  # one epoch of this rank (4 samples, 2 ranks)
    batch = stream.batch(0)
    state = trainer.state.generator.get_state()
    # this rank's own gradient, without any communication
    local = copy.deepcopy(acc.unwrap_model(trainer.model))
    loss = training_loss(local, batch, trainer.codec, trainer.text, trainer.scheduler, trainer.config,
                         torch.Generator().set_state(state), acc.device)
    loss.backward()
    local_grads = torch.cat([p.grad.flatten() for p in local.parameters()])
    # the same batch through the data-parallel model: gradients are averaged over the ranks
    trainer.state.generator.set_state(state)
    acc.backward(trainer.loss(batch))
    ddp_grads = torch.cat([p.grad.flatten() for p in acc.unwrap_model(trainer.model).parameters()])
    all_local = acc.gather(local_grads[None])  # collectives: every rank takes part
    all_keys = acc.gather_for_metrics(keys, use_gather_object=True)
    if acc.is_main_process:
        torch.save({"keys": all_keys, "all_local": all_local, "ddp": ddp_grads}, result)
    acc.wait_for_everyone()


@pytest.mark.slow
def test_two_cpu_processes_see_disjoint_data_and_average_gradients(shard_root, tmp_path):
    import torch.multiprocessing as mp

    result = tmp_path / "result.pt"
    mp.spawn(_worker, args=(2, _free_port(), str(shard_root), str(tmp_path / "out"), str(result)), nprocs=2)
    got = torch.load(result)
    keys = got["keys"]
    assert len(keys) == 4 and sorted(keys) == ["a__x", "a__y", "b__x", "b__y"]  # disjoint, together everything
    assert not torch.allclose(got["all_local"][0], got["all_local"][1])  # different data, different gradients
    torch.testing.assert_close(got["ddp"], got["all_local"].mean(0), rtol=1e-5, atol=1e-7)


def test_accelerate_configs_load():
    from pathlib import Path

    from accelerate.commands.config.config_args import ClusterConfig

    folder = Path(__file__).resolve().parents[2] / "reference_model" / "configs"
    names = {p.name for p in (folder / "accelerate").glob("*.yaml")}
    assert names == {"ddp.yaml", "zero2.yaml", "zero3.yaml", "fsdp.yaml"}
    for name in sorted(names):
        config = ClusterConfig.from_yaml_file(folder / "accelerate" / name)
        if config.deepspeed_config:
            ds = json.loads((folder.parents[1] / config.deepspeed_config["deepspeed_config_file"]).read_text())
            assert ds["zero_optimization"]["stage"] == int(name[4])
    for name in ("small-c4d128-2d.json", "small-c4d128-multiview.json", "charactershot-2d.json",
                 "charactershot-multiview.json"):
        assert load_config(folder / name).stage in ("2d", "multiview")


def test_latent_cache_reads_back_what_it_wrote(shard_root, tmp_path):
    from reference_model.codec import SpaceToDepthCodec
    from reference_model.data import TrainingStream
    from reference_model.training.latent_cache import LatentCache
    from reference_model.training.trainer import encode_batch

    class CountingCodec(SpaceToDepthCodec):
        calls = 0

        def encode_video(self, video):
            CountingCodec.calls += 1
            return super().encode_video(video)

    codec = CountingCodec(8)
    config = tiny_config(shard_root, tmp_path, stage="multiview")
    batch = TrainingStream(config.data).batch(1)
    cache = LatentCache(tmp_path / "cache", {"codec": codec.config(), "height": 32})
    gen = torch.Generator().manual_seed(0)
    fresh = encode_batch(batch, codec, torch.device("cpu"), gen, None)
    first = encode_batch(batch, codec, torch.device("cpu"), gen, None, cache)
    calls = CountingCodec.calls
    again = encode_batch(batch, codec, torch.device("cpu"), gen, None, cache)
    assert CountingCodec.calls == calls  # nothing encoded the second time
    assert cache.hits == cache.misses > 0
    for name in ("clean", "poses", "reference"):
        assert torch.equal(fresh[name], first[name]) and torch.equal(first[name], again[name])
    other = LatentCache(tmp_path / "cache", {"codec": codec.config(), "height": 64})
    assert other.root != cache.root  # other settings, other entries


def test_flop_count_matches_torch_flop_counter():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from reference_model.training.flops import multiview_forward_flops
    from reference_model.transformer import PoseTransformer3DModel
    from reference_model.transformer_multiview import MultiViewTransformer3DModel

    config = dict(num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=4,
                  text_embed_dim=12, max_text_seq_length=4, num_layers=2, sample_height=4, sample_width=6,
                  sample_frames=9, use_learned_positional_embeddings=False)  # fmt: skip
    torch.manual_seed(0)
    model = MultiViewTransformer3DModel.from_stage1(PoseTransformer3DModel(**config)).eval()
    v, f, h, w = 3, 3, 4, 6
    x = torch.randn(1, v, f, 4, h, w)
    # the math SDPA backend runs attention as matmuls, which the counter sees (the fused CPU kernel it does not)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x, torch.randn(1, 4, 12), torch.tensor([10]), torch.randn(1, v, 1, 4, h, w), torch.randn(1, v, f + 1, 4, h, w))
    counted = multiview_forward_flops({**config, "patch_size": 2}, v, f + 1, h // 2, w // 2)
    # torch counts every matmul, convolution and attention; ours leaves out the adaptive norms' small linears
    assert counted == pytest.approx(counter.get_total_flops(), rel=0.02)
