"""A leaderboard's identity: ``board.json`` (protocol, registered ground truth, required metrics), where
the board of the current repository is, and registering its ground truth."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from characterbench.protocol import get_protocol

BOARD_FILE = "board.json"
BOARD_SUBDIR = Path("leaderboards") / "characterbench-v1"


def default_board(start: str | Path | None = None) -> Path:
    """The board of the repository holding ``start`` (default: the current directory): the first
    ``leaderboards/characterbench-v1`` found walking up from it.

    Raises:
        FileNotFoundError: No such folder above ``start`` (pass ``--board``).
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / BOARD_SUBDIR / BOARD_FILE).is_file():
            return folder / BOARD_SUBDIR
    raise FileNotFoundError(f"no {BOARD_SUBDIR} with a {BOARD_FILE} in {here} or above it; pass --board")


@dataclass(frozen=True)
class Board:
    """The identity of a leaderboard.

    Attributes:
        name: e.g. ``"characterbench-v1"``.
        protocol_version: Protocol every entry must have been computed under.
        protocol_fingerprint: Its pinned fingerprint.
        gt_manifest_hash: The test set every entry must have been computed on (None until registered).
        gt_description: Where that test set comes from, in words.
        required_metrics: Per task, the metrics an entry must report.
    """

    name: str
    protocol_version: str
    protocol_fingerprint: str
    gt_manifest_hash: str | None
    gt_description: str
    required_metrics: dict[str, list[str]]


def load_board(board_dir: str | Path) -> Board:
    """Read ``board.json``.

    Raises:
        FileNotFoundError: No ``board.json`` in the folder.
        ValueError: Malformed file.
    """
    path = Path(board_dir) / BOARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {board_dir} is not a leaderboard folder")
    data = json.loads(path.read_text())
    try:
        return Board(**data)
    except TypeError as exc:
        raise ValueError(f"{path}: expected the fields of Board {list(Board.__dataclass_fields__)}: {exc}") from exc


def save_board(board: Board, board_dir: str | Path) -> Path:
    """Write ``board.json``."""
    path = Path(board_dir) / BOARD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(board), indent=2) + "\n")
    return path


def register_gt(board_dir: str | Path, gt: str | Path, description: str, progress: bool = True) -> Board:
    """Register the ground truth of a board (its manifest hash) from the data itself.

    Args:
        board_dir: The board folder.
        gt: The test set (anything ``character4d.format.open_samples`` reads).
        description: Where it comes from, in words (shown on the board).
        progress: Show a progress bar.

    Returns:
        The updated board (written to ``board.json``).

    Raises:
        ValueError: The board already has another ground truth registered (make a new board).
    """
    from characterbench.groundtruth import index_ground_truth

    board = load_board(board_dir)
    index = index_ground_truth(gt, get_protocol(board.protocol_version), progress=progress)
    if board.gt_manifest_hash not in (None, index.manifest_hash):
        raise ValueError(
            f"{board.name} already registers ground truth {board.gt_manifest_hash}, got {index.manifest_hash}; "
            "a different test set needs a new board"
        )
    board = Board(**{**asdict(board), "gt_manifest_hash": index.manifest_hash, "gt_description": description})
    save_board(board, board_dir)
    return board


# --------------------------------------------------------------------------- submission


def new_board(board_dir: str | Path, protocol_version: str = "characterbench-v1") -> Board:
    """Create ``board.json`` for a registered protocol (ground truth registered later).

    Raises:
        KeyError: Unknown protocol version.
        FileExistsError: The board exists.
    """
    protocol = get_protocol(protocol_version)
    if (Path(board_dir) / BOARD_FILE).exists():
        raise FileExistsError(f"{Path(board_dir) / BOARD_FILE} exists")
    board = Board(
        name=Path(board_dir).name,
        protocol_version=protocol.version,
        protocol_fingerprint=protocol.fingerprint(),
        gt_manifest_hash=None,
        gt_description="not registered yet",
        required_metrics={
            # CLIP-S and FID weights ship in no package registry, so they are optional columns.
            "multiview": ["ssim", "psnr", "lpips", "fvd_f", "fvd_v", "fvd_d", "fv4d"],
            "apose": ["psnr", "ssim", "lpips"],
        },
    )
    save_board(board, board_dir)
    return board
