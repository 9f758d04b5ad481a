"""Training the NCF and publishing a model: the fit, the refit on every rating, the ledger check, Comet."""
