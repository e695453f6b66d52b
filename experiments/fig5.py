"""Figure 5: Figure 4's experiment (experiments/fig4.py) on MNIST (paper, section 6.4).

n MNIST images and one more, x*, drawn uniformly without replacement,
flattened to R^784 and normalized onto the sphere S^783; rho_l, Sigmadot^l and
Thetabar^l of every pair inside the data and every pair (x_i, x*) are traced
over depths 1..L, and the summary compares pairs of the same digit with the
others.
"""

from ntkdepth.experiments import variant

NAME = "fig5"
DESCRIPTION = "rho_l, Sigmadot^l and Thetabar^l against depth for pairs of MNIST images on the sphere"

Config, run, report = variant("fig4", dataset="mnist", n=50)
