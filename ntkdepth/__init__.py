"""ntkdepth: wide and deep neural networks through their neural tangent kernel.

Exact infinite-width kernels at any depth (:mod:`ntkdepth.kernels`), the
empirical kernels of finite networks (:mod:`ntkdepth.empirical`), and the
experiments of "Revisiting the Neural Tangent Kernel: the role of large width
and depth" (``ntkdepth run NAME``).

A network is described once by :class:`ntkdepth.NetworkSpec` (the home of
the class is :mod:`ntkdepth.models.spec`), which gives its Flax model, its
analytic kernels and its neural-tangents layers.

Importing ntkdepth changes no global JAX setting: float64 is requested per
call, with ``with jax.enable_x64(True):``.
"""

__version__ = "0.1.0"
__all__ = ["NetworkSpec"]


def __getattr__(name: str):
    # NetworkSpec imports Flax; ``import ntkdepth`` alone stays light.
    if name == "NetworkSpec":
        from ntkdepth.models.spec import NetworkSpec

        return NetworkSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
