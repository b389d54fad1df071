"""Weights: CogVideoX-5B-I2V into stage 1, stage 1 into stage 2, and the released CharacterShot layout.

None of these weights can be downloaded by this toolkit; every function here reads a folder the user
provides and says where to put it when it is missing:

- CogVideoX-5B-I2V (diffusers layout, ``THUDM/CogVideoX-5b-I2V`` on the Hugging Face Hub):
  ``<dir>/transformer/{config.json, diffusion_pytorch_model*.safetensors}``.
- The released CharacterShot checkpoint (``Gaojunyao/CharacterShot``, DESIGN.md 8.2.1): ``tokenizer/``,
  ``text_encoder/``, ``vae/``, ``scheduler/``, ``transformer/`` (the multi-view transformer, same module
  names as ``MultiViewTransformer3DModel``), ``camera_guider.pt`` (state dict ``layer.{0..12}.*``) and
  ``camera_embs/{0..20}.pt``.
- A training state dict of the released code's combined module (``transformer.*`` and
  ``camera_guider.*`` keys, possibly wrapped in ``{"module": ...}`` by DeepSpeed).

``convert_charactershot`` turns the released layout into a ``CharacterShotPipeline`` folder
(``save_pretrained`` layout: ``model_index.json``, ``transformer/``, ``camera_encoder/``, ...).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "ConversionReport",
    "convert_charactershot",
    "is_released_layout",
    "load_cogvideox_i2v_transformer",
    "load_pipeline",
    "load_released_camera_encoder",
    "load_released_transformer",
    "read_state_dict",
    "split_released_state_dict",
    "stage2_from_stage1",
]

COGVIDEOX_HINT = (
    "download the diffusers CogVideoX-5B-I2V weights (e.g. `huggingface-cli download THUDM/CogVideoX-5b-I2V "
    "--local-dir DIR` on a machine with access) and pass DIR"
)
CHARACTERSHOT_HINT = (
    "download the released CharacterShot checkpoint (Hugging Face `Gaojunyao/CharacterShot`: tokenizer/, "
    "text_encoder/, vae/, scheduler/, transformer/, camera_guider.pt, camera_embs/) and pass its folder"
)


class CheckpointError(ValueError):
    """A checkpoint that exists but does not fit (wrong class, missing or extra keys, wrong shapes)."""


class CheckpointNotFoundError(FileNotFoundError):
    """A checkpoint file or folder is missing; the message says what to download and where to put it."""


_WEIGHT_NAMES = ("diffusion_pytorch_model", "model")


def read_state_dict(folder: str | os.PathLike, hint: str = COGVIDEOX_HINT) -> dict[str, torch.Tensor]:
    """Read the weights of a diffusers model folder (single or sharded safetensors, or a ``.bin``).

    Args:
        folder: The model folder (holding ``config.json``).
        hint: What to tell the user when nothing is there.

    Returns:
        The state dict (CPU tensors, dtype as stored).

    Raises:
        CheckpointNotFoundError: if no weight file is found.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in _WEIGHT_NAMES:
        single = folder / f"{name}.safetensors"
        if single.is_file():
            return load_file(single)
        index = folder / f"{name}.safetensors.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                if not (folder / shard).is_file():
                    raise CheckpointNotFoundError(f"{folder / shard}: shard listed in {index.name} is missing; {hint}")
                state.update(load_file(folder / shard))
            return state
        binary = folder / f"{name}.bin"
        if binary.is_file():
            return torch.load(binary, map_location="cpu", weights_only=True)
    raise CheckpointNotFoundError(
        f"{folder}: no diffusion_pytorch_model.safetensors (or sharded index, or .bin) found; {hint}"
    )


def _model_folder(path: str | os.PathLike, subfolder: str, hint: str) -> Path:
    path = Path(path)
    for candidate in (path / subfolder, path):
        if (candidate / "config.json").is_file():
            return candidate
    raise CheckpointNotFoundError(f"{path}: expected {path / subfolder / 'config.json'}; {hint}")


def _load_into(cls: type, config: Mapping[str, Any], state: dict[str, torch.Tensor], source: Path,
               dtype: torch.dtype | None, device: torch.device | str | None):  # fmt: skip
    """Build ``cls(**config)`` without random init and load ``state`` strictly, naming any mismatch."""
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in config.items() if k in known}
    unknown = sorted(k for k in config if k not in known and not k.startswith("_"))
    if unknown:
        # A setting this class does not have could change the architecture: refuse rather than ignore it.
        raise CheckpointError(f"{source}: config keys that {cls.__name__} does not know: {unknown}")
    with torch.device("meta"):
        model = cls(**kwargs)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{source}: weights do not fit {cls.__name__}: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(wrong)} with another shape "
            f"(e.g. {[(k, got[k], expected[k]) for k in wrong[:3]]})"
        )
    state = {k: v.to(device=device or "cpu", dtype=dtype if (dtype is not None and v.is_floating_point()) else v.dtype)
             for k, v in state.items()}  # fmt: skip
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def load_cogvideox_i2v_transformer(path: str | os.PathLike, dtype: torch.dtype | None = None,
                                   device: torch.device | str | None = None):  # fmt: skip
    """Load the diffusers CogVideoX-5B-I2V transformer into stage 1 (``PoseTransformer3DModel``).

    The image-latent channels (16-31) of the I2V patch embedding become the pose-latent channels, as in
    CharacterShot's 2D pre-training; every key maps one to one.

    Args:
        path: The CogVideoX-5B-I2V folder (or its ``transformer/`` subfolder).
        dtype: Cast floating-point weights to this dtype (default: as stored).
        device: Where to put the weights (default CPU).

    Returns:
        The stage-1 model in eval mode.

    Raises:
        CheckpointNotFoundError: if the folder or its weights are missing (the message says where to put them).
        CheckpointError: if it is not a CogVideoX 1.0 image-to-video transformer.
    """
    from reference_model.transformer import PoseTransformer3DModel

    folder = _model_folder(path, "transformer", COGVIDEOX_HINT)
    config = json.loads((folder / "config.json").read_text())
    if config.get("_class_name") not in (None, "CogVideoXTransformer3DModel", "PoseTransformer3DModel"):
        raise CheckpointError(f"{folder}: expected a CogVideoXTransformer3DModel config, got {config.get('_class_name')}")
    if config.get("in_channels") != 2 * config.get("out_channels", 16) or config.get("patch_size_t") is not None:
        raise CheckpointError(
            f"{folder}: expected a CogVideoX 1.0 image-to-video transformer (in_channels = 2 x out_channels, no "
            f"patch_size_t), got in_channels={config.get('in_channels')}, patch_size_t={config.get('patch_size_t')}"
        )
    return _load_into(PoseTransformer3DModel, config, read_state_dict(folder, COGVIDEOX_HINT), folder, dtype, device)


def stage2_from_stage1(stage1):
    """The multi-view transformer initialised from a stage-1 model (``MultiViewTransformer3DModel.from_stage1``)."""
    from reference_model.transformer_multiview import MultiViewTransformer3DModel

    return MultiViewTransformer3DModel.from_stage1(stage1)


def is_released_layout(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a released CharacterShot folder (has ``camera_guider.pt`` and ``transformer/``)."""
    path = Path(path)
    return (path / "camera_guider.pt").is_file() and (path / "transformer").is_dir()


def split_released_state_dict(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split a released training state dict into transformer and camera-encoder weights.

    Accepts the released combined module's keys (``transformer.<key>``, ``camera_guider.<key>``), bare
    transformer keys, and DeepSpeed/Lightning wrappers (``{"module": ...}``, ``{"state_dict": ...}``).

    Args:
        state: The loaded checkpoint.

    Returns:
        ``(transformer_state, camera_state)`` with the keys of ``MultiViewTransformer3DModel`` and
        ``CameraEncoder``.

    Raises:
        CheckpointError: for a key that belongs to neither (all such keys are listed).
    """
    for wrapper in ("module", "state_dict"):
        if wrapper in state and isinstance(state[wrapper], Mapping):
            state = state[wrapper]
    transformer: dict[str, torch.Tensor] = {}
    camera: dict[str, torch.Tensor] = {}
    leftover = []
    for key, value in state.items():
        if key.startswith("camera_guider."):
            camera[key[len("camera_guider.") :]] = value
        elif key.startswith("transformer.") and not key.startswith("transformer_blocks."):
            transformer[key[len("transformer.") :]] = value
        elif key.startswith(("transformer_blocks.", "patch_embed.", "time_", "ofs_", "norm_", "proj_out.")):
            transformer[key] = value
        else:
            leftover.append(key)
    if leftover:
        raise CheckpointError(f"released checkpoint: {len(leftover)} keys belong to no model: {sorted(leftover)[:10]}")
    return transformer, camera


def load_released_transformer(path: str | os.PathLike, dtype: torch.dtype | None = None,
                              device: torch.device | str | None = None):  # fmt: skip
    """Load the released ``transformer/`` folder into ``MultiViewTransformer3DModel`` (keys map one to one).

    Raises:
        CheckpointNotFoundError: if the folder or its weights are missing.
        CheckpointError: if the keys or shapes do not fit.
    """
    from reference_model.transformer_multiview import MultiViewTransformer3DModel

    folder = _model_folder(path, "transformer", CHARACTERSHOT_HINT)
    config = json.loads((folder / "config.json").read_text())
    state, camera = split_released_state_dict(read_state_dict(folder, CHARACTERSHOT_HINT))
    if camera:
        raise CheckpointError(f"{folder}: camera-encoder keys inside the transformer weights: {sorted(camera)[:3]}")
    return _load_into(MultiViewTransformer3DModel, config, state, folder, dtype, device)


def load_released_camera_encoder(path: str | os.PathLike, dtype: torch.dtype | None = None,
                                 device: torch.device | str | None = None):  # fmt: skip
    """Load ``camera_guider.pt`` (released) into ``CameraEncoder``; the width comes from the weights.

    Raises:
        CheckpointNotFoundError: if the file is missing.
        CheckpointError: if its keys or shapes do not fit.
    """
    from reference_model.camera import CameraEncoder

    path = Path(path)
    file = path / "camera_guider.pt" if path.is_dir() else path
    if not file.is_file():
        raise CheckpointNotFoundError(f"{file}: camera_guider.pt not found; {CHARACTERSHOT_HINT}")
    state = torch.load(file, map_location="cpu", weights_only=True)
    _, camera = split_released_state_dict({f"camera_guider.{k}": v for k, v in state.items()})
    if "layer.12.weight" not in camera or "layer.0.weight" not in camera:
        raise CheckpointError(f"{file}: expected keys layer.0.weight ... layer.12.weight, got {sorted(camera)[:5]}")
    config = {
        "in_channels": camera["layer.0.weight"].shape[1],
        "hidden_channels": camera["layer.0.weight"].shape[0],
        "out_channels": camera["layer.12.weight"].shape[0],
    }
    return _load_into(CameraEncoder, config, camera, file, dtype, device)


@dataclass(frozen=True)
class ConversionReport:
    """What ``convert_charactershot`` did.

    Attributes:
        transformer_keys: Number of transformer tensors written.
        camera_keys: Number of camera-encoder tensors written.
        copied: Component folders copied (or hard-linked) unchanged.
        output: The pipeline folder written.
    """

    transformer_keys: int
    camera_keys: int
    copied: tuple[str, ...]
    output: Path


def _link_or_copy(src: str, dst: str) -> str:
    # Hard links keep a 9 GB text encoder from being duplicated when source and target share a disk.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def convert_charactershot(src: str | os.PathLike, dst: str | os.PathLike, dtype: torch.dtype | None = None) -> ConversionReport:
    """Convert the released CharacterShot folder into a ``CharacterShotPipeline`` folder.

    Every tensor of ``transformer/`` and ``camera_guider.pt`` is mapped (loading is strict: a missing,
    extra or mis-shaped key is an error and nothing is written). ``tokenizer/``, ``text_encoder/``,
    ``vae/`` and ``scheduler/`` are standard folders and are copied (hard-linked where possible);
    ``camera_embs/`` is not needed (ray maps are computed from the cameras) and is left out.

    Args:
        src: The released folder.
        dst: The pipeline folder to write (must not exist or be empty).
        dtype: Store the weights in this dtype (default: as released).

    Returns:
        A ``ConversionReport``.

    Raises:
        CheckpointNotFoundError: if a part of the released layout is missing.
        CheckpointError: if weights do not fit.
        FileExistsError: if ``dst`` exists and is not empty.
    """
    src, dst = Path(src), Path(dst)
    if not is_released_layout(src):
        raise CheckpointNotFoundError(f"{src}: expected transformer/ and camera_guider.pt; {CHARACTERSHOT_HINT}")
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst}: output folder exists and is not empty")
    transformer = load_released_transformer(src, dtype=dtype)
    camera = load_released_camera_encoder(src, dtype=dtype)
    copied = []
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    transformer.save_pretrained(tmp / "transformer")
    camera.save_pretrained(tmp / "camera_encoder")
    components: dict[str, list[str]] = {
        "transformer": ["reference_model.transformer_multiview", "MultiViewTransformer3DModel"],
        "camera_encoder": ["reference_model.camera", "CameraEncoder"],
    }
    for name in ("tokenizer", "text_encoder", "vae", "scheduler"):
        if (src / name).is_dir():
            shutil.copytree(src / name, tmp / name, copy_function=_link_or_copy)
            copied.append(name)
            config_file = "tokenizer_config.json" if name == "tokenizer" else (
                "scheduler_config.json" if name == "scheduler" else "config.json")  # fmt: skip
            components[name] = _library_and_class(tmp / name / config_file, name)
        else:
            components[name] = [None, None]
    index = {"_class_name": "CharacterShotPipeline", "_diffusers_version": _diffusers_version(), **components}
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    if dst.exists():
        dst.rmdir()
    tmp.rename(dst)
    return ConversionReport(len(transformer.state_dict()), len(camera.state_dict()), tuple(copied), dst)


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


def _library_and_class(config_file: Path, name: str) -> list[str]:
    """``[library, class]`` of a component folder for ``model_index.json``."""
    defaults = {
        "tokenizer": ["transformers", "T5Tokenizer"],
        "text_encoder": ["transformers", "T5EncoderModel"],
        "vae": ["diffusers", "AutoencoderKLCogVideoX"],
        "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
    }
    if not config_file.is_file():
        return defaults[name]
    config = json.loads(config_file.read_text())
    if name == "tokenizer":
        cls = config.get("tokenizer_class") or defaults[name][1]
        return ["transformers", cls]
    if name == "text_encoder":
        arch = config.get("architectures") or [defaults[name][1]]
        return ["transformers", arch[0]]
    return ["diffusers", config.get("_class_name", defaults[name][1])]


def load_pipeline(path: str | os.PathLike, dtype: torch.dtype | None = None, device: torch.device | str | None = None):
    """Load a ``CharacterShotPipeline`` from a pipeline folder or from the released CharacterShot layout.

    Args:
        path: A folder written by ``CharacterShotPipeline.save_pretrained`` / ``convert_charactershot``,
            or the released checkpoint folder (converted in memory).
        dtype: Weights dtype (e.g. ``torch.bfloat16``; default as stored).
        device: Where to put the pipeline (default CPU).

    Returns:
        The pipeline.

    Raises:
        CheckpointNotFoundError: if the folder holds neither layout (the message says what to download).
        CheckpointError: if weights do not fit.
    """
    from reference_model.pipeline import COGVIDEOX_SCHEDULER_CONFIG, CharacterShotPipeline

    path = Path(path)
    if (path / "model_index.json").is_file():
        pipe = CharacterShotPipeline.from_pretrained(path, dtype=dtype)
    elif is_released_layout(path):
        from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler
        from transformers import AutoTokenizer, T5EncoderModel

        for name in ("tokenizer", "text_encoder", "vae"):
            if not (path / name).is_dir():
                raise CheckpointNotFoundError(f"{path / name}: missing from the released layout; {CHARACTERSHOT_HINT}")
        scheduler_dir = path / "scheduler"
        scheduler = (CogVideoXDDIMScheduler.from_pretrained(scheduler_dir) if scheduler_dir.is_dir()
                     else CogVideoXDDIMScheduler(**COGVIDEOX_SCHEDULER_CONFIG))  # fmt: skip
        pipe = CharacterShotPipeline(
            tokenizer=AutoTokenizer.from_pretrained(path / "tokenizer"),
            text_encoder=T5EncoderModel.from_pretrained(path / "text_encoder", dtype=dtype),
            vae=AutoencoderKLCogVideoX.from_pretrained(path / "vae", dtype=dtype),
            transformer=load_released_transformer(path, dtype=dtype),
            scheduler=scheduler,
            camera_encoder=load_released_camera_encoder(path, dtype=dtype),
        )
    else:
        raise CheckpointNotFoundError(
            f"{path}: neither a pipeline folder (model_index.json) nor the released layout (camera_guider.pt, "
            f"transformer/); {CHARACTERSHOT_HINT}, or train one with `charactershot train`"
        )
    return pipe.to(device) if device is not None else pipe
