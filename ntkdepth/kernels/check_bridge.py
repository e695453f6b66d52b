"""``python -m ntkdepth.kernels.check_bridge``: checks the neural-tangents bridge on this JAX."""

from ntkdepth.kernels.nt_bridge import self_check

if __name__ == "__main__":
    print(self_check())
