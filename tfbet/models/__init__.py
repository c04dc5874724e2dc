"""The architectures of the paper, by name, for gin configs and the binaries.

A gin file selects and configures a model through ``get_model``, e.g.::

    get_model.name = 'simplenet'
    get_model.variant = 'mnist'
    get_model.width = 0.25

Every model is a functional Keras model returning logits, so it can be quantized by
``quantize_apply``.
"""
import gin

from tfbet.models.resnet import resnet20
from tfbet.models.resnet import resnet50
from tfbet.models.simplenet import simplenet
from tfbet.models.wide_resnet import wide_resnet

MODELS = {
    "simplenet": simplenet,
    "wide_resnet": wide_resnet,
    "resnet20": resnet20,
    "resnet50": resnet50,
}


@gin.configurable(module="tfbet.models")
def get_model(name, **kwargs):
  """Builds the model registered as ``name`` with the constructor's keyword arguments."""
  if name not in MODELS:
    raise ValueError(f"name must be one of {tuple(MODELS)}, got {name!r}.")
  return MODELS[name](**kwargs)


__all__ = ["MODELS", "get_model", "resnet20", "resnet50", "simplenet", "wide_resnet"]
