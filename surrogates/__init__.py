"""Featurizers, Gaussian processes, deep ensembles, MLIP scorers and calibration."""
