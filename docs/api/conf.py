"""Sphinx configuration of ntkdepth's API reference, generated from the docstrings.

Build: ./uvrun sphinx-build -W --keep-going -b html docs/api /tmp/ntkdepth-api
"""

project = "ntkdepth"
author = "the ntkdepth authors"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]

# Google-style sections (Args:, Returns:, Raises:, Attributes:), as the docstrings are written.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # a class's Attributes: section as fields, not a second description

autodoc_default_options = {"members": True, "undoc-members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True  # show `depth: int = 1000`, not a re-evaluated repr
add_module_names = False

# Every cross-reference must resolve: a broken :func: or :class: fails the build under -W.
# Names from other projects are not in this reference (no network at build time for intersphinx).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|jax|jnp|jaxlib|flax|nnx|optax|orbax|matplotlib|neural_tangents|scipy|tqdm)(\..*)?"),
    (r"py:.*", r"(pathlib|collections|typing|dataclasses|os|types|argparse|concurrent)\..*"),
    (r"py:class", r"Path|Callable|Any|Sequence|Mapping|Iterable|Iterator|ArrayLike"),  # annotations' names
]

# Kernel names that public signatures and docstrings use but ntkdepth.kernels does not export.
nitpick_ignore = [("py:class", "ntkdepth.kernels.gaussian.MehlerPlan"), ("py:class", "Custom")]


def _drop_builtin_docstrings(app, what, name, obj, options, lines):
    """A constant without a ``#:`` comment would show the docstring of its type (int, dict, ...)."""
    import inspect

    own = type(obj).__doc__
    if what in ("data", "attribute") and lines and isinstance(own, str):
        if "\n".join(lines).strip() == inspect.cleandoc(own):
            lines.clear()


def setup(app):
    app.connect("autodoc-process-docstring", _drop_builtin_docstrings)


html_theme = "alabaster"
html_title = "ntkdepth API reference"
html_static_path: list[str] = []
exclude_patterns = ["_build"]
