"""Diagnostics on a tagged table: does the outcome move with things that are not the text's quality?

Four checks, one module each, each a result object with a one-sentence plain-language `verdict`, `summary()`
and `to_dict()`, shared by the CLI (`deconfound diagnose`) and the Diagnostics page: `time_patterns`
(weekday and month), `markers` (spurious phrases), `entanglement` (the confounder moving with the text),
`leakage` (a score tracking the monthly outcome); `report` runs them all on a table, `config` holds their
thresholds. The `causal` face re-exports the public names.
"""
