"""Inverse-design generators from the literature: designs for a target property, drawn directly.

* ``cinn`` — MatDesINNe (Fung, Zhang et al., npj Comput. Mater. 2021): a conditional
  invertible network samples ``p(x | y*)``; down-selection and surrogate-gradient
  localisation sharpen the draws.  :class:`ForwardINN` is the plain INN it is compared with.
* ``janus`` — Janus (arXiv 2512.15746): a convolutional encoder–decoder with a property
  head on its latent, trained with reconstruction, property, cycle and deep-cycle losses;
  designs come from gradient descent on the latent, decoded and thresholded to two phases.
* ``image_regressor`` — a CNN ensemble on binary images (optionally over a coarse-grid
  physics prior) that ``design(..., score_model=)`` uses to pick the threshold and design.
"""

from generators.inverse.cinn import ConditionalINN, FlowTraining, ForwardINN, downselect, in_bounds, localise
from generators.inverse.context import InverseDesignError
from generators.inverse.image_regressor import ImageEnsemble, ImageEnsembleTraining, train_image_ensemble
from generators.inverse.janus import Inversion, JanusModel, JanusTraining, design, invert, train_janus
from generators.inverse.janus_generator import JanusGenerator
from generators.inverse.matdesinne import CINNGenerator, Generation, MatDesINNe
from generators.inverse.mlp import MLPEnsemble, MLPRegressor

GENERATORS = {CINNGenerator.name: CINNGenerator, JanusGenerator.name: JanusGenerator}
"""``generator.type`` in a campaign file → class; the loop's registry can merge this mapping."""

__all__ = [
    "CINNGenerator",
    "ConditionalINN",
    "FlowTraining",
    "ForwardINN",
    "GENERATORS",
    "Generation",
    "ImageEnsemble",
    "ImageEnsembleTraining",
    "InverseDesignError",
    "Inversion",
    "JanusGenerator",
    "JanusModel",
    "JanusTraining",
    "MLPEnsemble",
    "MLPRegressor",
    "MatDesINNe",
    "design",
    "downselect",
    "in_bounds",
    "invert",
    "localise",
    "train_image_ensemble",
    "train_janus",
]
