"""characterbench: the CharacterBench protocol, prediction validation, evaluation CLI and leaderboards."""

__version__ = "0.1.0"
