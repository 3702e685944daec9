"""Model → model passes. Each has an id equal to its module name, a precondition and a postcondition."""

from .fold_batchnorm import fold_batchnorm
from .reparameterize import reparameterize

PASSES = {"reparameterize": reparameterize, "fold_batchnorm": fold_batchnorm}

__all__ = ["PASSES", "fold_batchnorm", "reparameterize"]
