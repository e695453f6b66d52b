"""Figure 6 on MNIST: Figure 6's experiment (experiments/fig6.py) on MNIST images.

n MNIST images drawn uniformly without replacement and normalized onto S^783:
the norm of the projection operator P_t of the normalized-NTK predictor
against depth for bounded stopping times and t = inf, and the gap to 1/4 of a
few held-out images (paper, section 6.4).
"""

from ntkdepth.experiments import variant

NAME = "fig6-mnist"
DESCRIPTION = "norm of the projection operator P_t against depth on MNIST, for bounded stopping times"

Config, run, report = variant("fig6", dataset="mnist")
