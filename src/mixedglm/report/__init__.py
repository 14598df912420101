"""Tables and their renderings: Stata text, markdown, LaTeX, HTML."""
