"""Model frame to arrays: missing values, factor codings, cluster codes, hybrid terms."""
