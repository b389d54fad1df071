"""characterbench: the CharacterBench protocol, prediction validation, evaluation CLI and leaderboards.

Modules (nothing heavy is imported here; torch and the metric networks load inside the functions):

- ``protocol``: the frozen, versioned :class:`~characterbench.protocol.Protocol` (``PROTOCOL_V1``)
  and its tensor functions (compositing, resizing, FVD clip construction);
- ``registry``: named registries that miss helpfully; ``metric_specs``: every metric (``METRICS``);
- ``tasks``: one file per task (``multiview``, ``apose``, ``pose``) and the registry ``TASKS``;
- ``pose``: pose-map decoding, triangulation and pose errors (numpy);
- ``groundtruth``: ground truth through ``character4d.format``, its manifest hash;
- ``predictions``: prediction folder layout, validation (every problem at once), reading;
- ``config`` / ``evaluate``: :class:`~characterbench.config.EvalConfig` and
  :func:`~characterbench.evaluate.evaluate`;
- ``scorers``: the bridge to ``metrics`` (models and weights of one evaluation);
- ``results``: the typed result record and its JSON schema;
- ``report``: heat maps and worst-cell contact sheets;
- ``leaderboard``: boards, submission checks, generated Markdown/HTML;
- ``submission``: re-scoring submitted records, prediction manifests, board verification;
- ``baselines``: ground-truth, static A-pose and front-view prediction folders;
- ``cli``: the ``characterbench`` command.
"""

def _version() -> str:
    """The installed distribution's version (pyproject.toml is the one place it is written)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("character4d-toolkit")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = _version()
