"""Fits and summary statistics shared by the library and the experiments."""

from ntkdepth.stats.fits import PowerLaw, fit_log_law, fit_power_law, fit_range, power_law_fits
from ntkdepth.stats.summary import mean_sd, standard_error

__all__ = ["PowerLaw", "fit_log_law", "fit_power_law", "fit_range", "mean_sd", "power_law_fits", "standard_error"]
