"""Orchestration of the models: parse -> design -> engine -> optimise -> results.

``glmm`` (mixed models), ``clogit``/``xtpoisson_fe`` (conditional fixed effects) and
``hybrid`` (within/between decomposition on top of ``glmm``). No mathematics here.
"""
