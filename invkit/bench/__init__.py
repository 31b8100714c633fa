"""Core benchmarks (``invkit bench operators``, ``invkit bench speed``); plugins add their own through
the ``invkit_register_benchmarks`` hook (``invkit bench gmm`` is the GMM plugin's)."""
