"""lme4-style formulas: fixed part for formulaic, random-effect terms as structures."""

from mixedglm.formula.parse import ParsedFormula, RandomTerm, parse_formula

__all__ = ["ParsedFormula", "RandomTerm", "parse_formula"]
