"""Training regimes: interventions that promote or oppose path independence.

Anil et al. (2022) promote path independence with a random forward budget per batch and
random (mixed) initial states during training, and oppose it with a fixed start and a fixed
budget; Jacobian regularisation (Bai et al. 2021) makes the cell more contractive. A regime
sets every one of these switches, so it means the same thing on every experiment:

| regime | gradient | solver | start | random budget | Jacobian reg |
|---|---|---|---|---|---|
| unrolled_mixed | unrolled | fixed point | mixed | no | no |
| unrolled_jitter | unrolled | fixed point | mixed | yes | no |
| unrolled_fixed | unrolled | fixed point | zeros | no | no |
| implicit_mixed | implicit | fixed point | mixed | yes | no |
| implicit_fixed | implicit | fixed point | zeros | no | no |
| phantom_mixed | phantom | fixed point | mixed | yes | no |
| anderson_implicit | implicit | Anderson | mixed | yes | no |
| jacobian_reg | unrolled | fixed point | mixed | no | yes |

"mixed" starts half of each batch (chosen at random) from N(0, init_scale²) noise and half
from zeros; the random budget is drawn per batch from [max_steps − max_steps // 3, max_steps].
Evaluation always starts from zeros with fixed budgets, whatever the regime.
"""

from __future__ import annotations

import dataclasses

from ml_collections import ConfigDict


@dataclasses.dataclass(frozen=True)
class Regime:
    grad: str
    solver: str
    init: str
    jitter: bool
    jacobian_weight: float = 0.0

    def apply(self, config: ConfigDict, name: str) -> ConfigDict:
        """A copy of `config` with this regime's switches set (and `regime` = name)."""
        config = ConfigDict(config.to_dict())
        config.regime = name
        s = config.solver
        s.grad, s.name, s.init = self.grad, self.solver, self.init
        s.budget_jitter = s.max_steps // 3 if self.jitter else 0
        config.jacobian_reg.weight = self.jacobian_weight
        return config


REGIMES: dict[str, Regime] = {
    "unrolled_mixed": Regime("unrolled", "fixed_point", "mixed_example", False),
    "unrolled_jitter": Regime("unrolled", "fixed_point", "mixed_example", True),
    "unrolled_fixed": Regime("unrolled", "fixed_point", "zeros", False),
    "implicit_mixed": Regime("implicit", "fixed_point", "mixed_example", True),
    "implicit_fixed": Regime("implicit", "fixed_point", "zeros", False),
    "phantom_mixed": Regime("phantom", "fixed_point", "mixed_example", True),
    "anderson_implicit": Regime("implicit", "anderson", "mixed_example", True),
    "jacobian_reg": Regime("unrolled", "fixed_point", "mixed_example", False, 0.5),
}


def apply_regime(config: ConfigDict, name: str) -> ConfigDict:
    """`config` under regime `name`; a one-line error lists the valid names."""
    if name not in REGIMES:
        raise ValueError(f"unknown regime {name!r}; valid choices: {', '.join(REGIMES)} "
                         "(see nevis.upward.regimes).")
    return REGIMES[name].apply(config, name)
