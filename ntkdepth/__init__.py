"""ntkdepth: wide and deep neural networks through their neural tangent kernel.

Exact infinite-width kernels at any depth (:mod:`ntkdepth.kernels`), the
empirical kernels of finite networks (:mod:`ntkdepth.empirical`), and the
experiments of "Revisiting the Neural Tangent Kernel: the role of large width
and depth" (``ntkdepth run NAME``).

Importing ntkdepth changes no global JAX setting: float64 is requested per
call, with ``with jax.enable_x64(True):``.
"""

__version__ = "0.1.0"
