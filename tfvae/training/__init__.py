"""A run in a work directory: its phases (`train`), callbacks, checkpoints and resumption
(`checkpoints`, `runstate`, `runs`), optimisers, distribution strategies (`distribute`), the
lock that keeps one training per workdir (`locks`) and the config's whole check
(`validation`). Imports every folder below it: the core, data, distributions, inference, models
and results."""
