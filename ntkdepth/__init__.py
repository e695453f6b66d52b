"""ntkdepth: wide and deep neural networks through their neural tangent kernel.

Exact infinite-width kernels at any depth (:mod:`ntkdepth.kernels`) and finite Flax networks
(:mod:`ntkdepth.models`), described together by one :class:`NetworkSpec`; the experiments run as
``ntkdepth run NAME``. Importing it changes no JAX setting (docs/library.md#the-environment).
"""

__version__ = "0.1.0"
__all__ = ["NetworkSpec"]


def __getattr__(name: str):
    # NetworkSpec imports Flax; ``import ntkdepth`` alone stays light.
    if name == "NetworkSpec":
        from ntkdepth.models.spec import NetworkSpec

        return NetworkSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
