"""characterbench: the CharacterBench protocol, prediction validation, evaluation CLI and leaderboards.

Modules (nothing heavy is imported here; torch and the metric networks load inside the functions):

- ``protocol``: the frozen, versioned :class:`~characterbench.protocol.Protocol` (``PROTOCOL_V1``)
  and its tensor functions (compositing, resizing, FVD clip construction);
- ``tasks``: registries of tasks (``multiview``, ``apose``) and metrics;
- ``groundtruth``: ground truth through ``character4d.format``, its manifest hash;
- ``predictions``: prediction folder layout, validation (every problem at once), reading;
- ``config`` / ``evaluate``: :class:`~characterbench.config.EvalConfig` and
  :func:`~characterbench.evaluate.evaluate`;
- ``scorers``: the bridge to ``metrics`` (models and weights of one evaluation);
- ``results``: the typed result record and its JSON schema;
- ``report``: heat maps and worst-cell contact sheets;
- ``leaderboard``: boards, submission checks, generated Markdown/HTML;
- ``baselines``: ground-truth, static A-pose and front-view prediction folders;
- ``cli``: the ``characterbench`` command.
"""

__version__ = "0.1.0"
