"""Mazes: train a weight-tied 2-D equilibrium cell on 9×9 mazes, test on 13×13 … 33×33.

    python -m nevis.upward --experiment=mazes                        # the best regime
    python -m nevis.upward --experiment=mazes --population           # regimes × seeds

Per-pixel task: is this pixel on the path from start to goal? Perfect mazes from randomised
depth-first search (`nevis.data.algorithmic`; an n×n maze is an n×n pixel grid with
(n − 1)/2 cells per side, so 9×9 has 4×4 cells and 33×33 has 16×16). The cell is a DT-Net-style
recall block (width 32, 3×3 kernels, one residual block, tanh state) solved by the
fixed-point solver of `nevis.equilibrium`: 30 iterations in training, 1 … 1000 at test time.

Training stops after `steps` updates or 15 minutes of CPU time (one core), whichever comes
first; see the README section "Path independence experiments" for what it reaches.
"""

from ml_collections import ConfigDict

from experiments import prefix_sums


def get_config() -> ConfigDict:
    config = prefix_sums.get_config()
    config.task = "mazes"
    config.regime = "unrolled_jitter"  # unrolled gradients, mixed start, random budget 20-30
    config.train_size = 9
    config.batch_size = 32
    config.steps = 3000
    config.max_seconds = 900.0
    config.model.width = 32
    config.optimizer.learning_rate = 3e-3  # 1e-3 learns 9×9 mazes about three times slower
    config.model.head_widths = (16,)
    config.solver.max_steps = 30
    config.solver.backward_max_steps = 30
    config.eval.sizes = (9, 13, 17, 25, 33)
    config.eval.num_examples = 100  # a 33×33 maze costs ~60 GFLOP per 1000 iterations
    config.eval.batch_size = 50
    config.eval.aa_examples = 50
    config.eval.aa_budgets = (10, 30, 100, 300, 1000)
    config.population.regimes = ("unrolled_mixed", "unrolled_jitter", "unrolled_fixed",
                                 "implicit_mixed", "jacobian_reg")
    config.population.seeds = (0,)
    config.population.overrides = ("steps=700", "max_seconds=240", "eval.sizes=9,13")
    return config
