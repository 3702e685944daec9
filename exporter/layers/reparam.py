"""The one re-parameterization protocol.

A multi-branch (or foldable) block subclasses ``Reparameterizable`` and implements ``reparameterize()``:
it rewrites itself *in place* into its deploy form and from then on reports ``deployed == True``.
Calling it again is a no-op. No other method name (switch_to_deploy, fuse, …) exists in this code base.
"""

from __future__ import annotations

from torch import nn


class Reparameterizable(nn.Module):
    _deployed: bool = False

    @property
    def deployed(self) -> bool:
        return self._deployed

    def reparameterize(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement reparameterize()")

    def _mark_deployed(self) -> None:
        self._deployed = True
