"""Likelihood engines: quadrature rules, adaptive quadrature, conditional likelihoods."""
