"""The CharacterShot reference implementation (arXiv 2508.07409), rewritten cleanly.

Parts (each imported on demand; importing this package loads no CUDA code, no weights and no network):

- ``reference_model.gs4d``: neighbour-constrained 4D Gaussian Splatting (multi-view videos -> 4D character).
- the pose-conditioned CogVideoX transformer (stage 1), its multi-view extension with the camera encoder
  (stage 2) and the ``CharacterShotPipeline``.
- training of both stages on character4d data.
- exports of fitted characters (viewer page, animated mesh, skeletal animation).

The console script is ``charactershot`` (``reference_model.cli``).
"""
