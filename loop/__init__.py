"""starloop: a self-improvement training loop for reasoning with verifiable rewards (STaR / rejection
sampling: sample, verify, rationalize, select, pair, train with TRL, evaluate; repeat).

Layout: ``config`` (the experiment config), ``records`` (the Sample record and every row
conversion), ``runtime`` (driver, samplers, child processes, launch, run dir, reports),
``stages`` (one module per stage), ``tasks`` (problem adapters), ``demo`` (the embedded
demo's seed model), ``cli`` (the ``starloop`` command)."""
