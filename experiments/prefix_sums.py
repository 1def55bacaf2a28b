"""Prefix sums: train a weight-tied 1-D equilibrium cell on 32-bit strings, test on 512.

    python -m nevis.upward --experiment=prefix_sums                 # the target model
    python -m nevis.upward --experiment=prefix_sums --regimes=all --seeds=0,1   # a population

Labels are the running parity of fresh random bits (`nevis.data.algorithmic`). The cell is a
DT-Net-style recall block (width 32, kernel 3, one residual block, tanh state), solved by the
fixed-point solver of `nevis.equilibrium` from zeros; its budget is 30 iterations in training
and 1 … 1000 at test time on 64, 128, 256 and 512 bits (and 32, in distribution). Each
iteration moves information three positions, so 512 bits need at least 171 iterations.

Default regime `unrolled_mixed`: backpropagation through the 30 iterations, half of each batch
starting from Gaussian noise. Measured on one core of a shared 2-core machine (see README,
"Path independence experiments", for the exact numbers): training stops after 1,500 steps or
8 minutes, whichever comes first; evaluation on 1,000 strings per size takes about as long
again.
"""

from ml_collections import ConfigDict


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.name = "upward"  # run with `python -m nevis.upward`, not `nevis.run`
    config.task = "prefix_sums"
    config.regime = "unrolled_mixed"  # a name from nevis.upward.regimes.REGIMES
    config.seed = 0
    config.train_size = 32
    config.batch_size = 64
    config.steps = 2000  # training stops at `steps` or `max_seconds`, whichever comes first
    config.max_seconds = 480.0  # the learning-rate schedule anneals by whichever is closer
    config.time_limit = "cpu"  # max_seconds of process CPU time (one core) or "wall" time
    config.log_every = 100
    config.model = ConfigDict({
        "name": "recall",  # recall | tanh (a diagnostic cell)
        "width": 32,
        "kernel": 3,
        "blocks": 1,
        "out": "tanh",  # tanh keeps the state bounded over 1000 iterations; relu | tanh
        "norm": "none",  # none | layer (per position, size independent)
        "head_widths": (32,),
    })
    config.solver = ConfigDict({
        "name": "fixed_point",  # fixed_point | anderson | broyden (nevis.equilibrium)
        "tau": 1.0,  # fixed_point damping
        "anderson_memory": 5,
        "anderson_lambda": 1e-4,
        "max_steps": 30,  # training budget
        "tol": 1e-4,  # relative residual; an example stops early below it
        "budget_jitter": 0,  # training budget drawn per batch from [max_steps - jitter, max_steps]
        "init": "zeros",  # zeros | gaussian | mixed_example | mixed_element
        "init_scale": 1.0,
        "grad": "unrolled",  # implicit | phantom | one_step | unrolled
        "backward_tol": 1e-4,
        "backward_max_steps": 30,
        "phantom_steps": 5,
        "phantom_tau": 0.5,
    })
    config.jacobian_reg = ConfigDict({"weight": 0.0, "samples": 1})
    config.optimizer = ConfigDict({
        "learning_rate": 1e-3,
        "warmup_steps": 50,
        "weight_decay": 0.0,
        "grad_clip_norm": 1.0,
        "schedule": "cosine",  # cosine | constant (after warmup)
    })
    config.eval = ConfigDict({
        "sizes": (32, 64, 128, 256, 512),
        "num_examples": 1000,  # fresh test strings per size (the same for every model)
        "batch_size": 200,
        "budgets": (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000),
        "aa_examples": 200,  # AA on the first examples of each size (whole batches)
        "aa_budgets": None,  # budgets with AA (None: all; must include the largest)
        "aa_modes": ("derangement", "gaussian"),
        "seed": 1234,  # test data; independent of the model seed
    })
    # `python -m nevis.upward --experiment=prefix_sums --population`: these regimes and seeds,
    # with these overrides (short training, fewer test strings) so a model takes minutes.
    config.population = ConfigDict({
        "regimes": ("unrolled_mixed", "unrolled_jitter", "unrolled_fixed", "implicit_mixed",
                    "implicit_fixed", "phantom_mixed", "anderson_implicit", "jacobian_reg"),
        "seeds": (0, 1),
        "overrides": ("steps=600", "max_seconds=150", "eval.sizes=32,64,128,256",
                      "eval.num_examples=200", "eval.batch_size=100", "eval.aa_examples=100",
                      "eval.aa_budgets=1,3,10,30,100,300,1000"),  # as --config.KEY=VALUE
    })
    return config
