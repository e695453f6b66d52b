"""Figure 7 on MNIST: Figure 7's experiment (experiments/fig7.py) on MNIST images.

lambda_min(Thetabar^L) against depth for n MNIST images drawn uniformly
without replacement and normalized onto S^783 (paper, section 6.4): at depth 1
the images' Gram matrix, badly conditioned and singular once n > 784; with
depth it rises towards 3/4.
"""

from ntkdepth.experiments import variant

NAME = "fig7-mnist"
DESCRIPTION = "lambda_min of the normalized NTK against depth on MNIST for several dataset sizes"

Config, run, report = variant("fig7", dataset="mnist")
