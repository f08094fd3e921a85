"""What texts mean, beyond the words they share: sentence vectors of titles."""

from knowledge.semantic.encoder import (
    Encoder,
    ModelError,
    encoder_for,
    installed_model,
    model_directory,
)

__all__ = ["Encoder", "ModelError", "encoder_for", "installed_model", "model_directory"]
