"""Training of both CharacterShot stages on character4d data (``charactershot train``).

- ``config``: the frozen training config and its JSON files (``reference_model/configs/``).
- ``loss``: the diffusion objective (v-prediction, CogVideoX weighting, reference frame excluded).
- ``trainer``: models, accelerate, the loop, exact checkpoints and resuming, logging.
- ``sampling``: a short DDIM sampler for preview videos and the small model's predictions.
"""
