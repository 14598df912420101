"""Result objects of the estimators."""
