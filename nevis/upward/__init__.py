"""Upward generalisation: recurrent/equilibrium models trained on small algorithmic inputs
(prefix sums, mazes) and tested on larger ones with more test-time iterations.

    python -m nevis.upward --experiment=prefix_sums [--population]   # train, evaluate, record
    python -m nevis.upward.population                                  # every population + figures

Modules: `regimes` (interventions on path independence), `train` (one model, solved with
`nevis.equilibrium`), `evaluate` (accuracy, AA, residuals, limit cycles at budgets 1 … 1000),
`records` (the run directory), `run` (the CLI and the plain loop over models), `population`
(the prefix-sum, maze and stream populations and their figures). Nothing here imports the
stream loop (`nevis.environment`); the stream population runs `python -m nevis.run`.
"""
