"""Names of the test-time budgets a DEQ learner reports, shared with `nevis.analysis`.

Kept free of JAX (and of every other nevis module) so that analysis code and notebooks can
import it without the learners.

A budget is a multiple of the training forward-solver budget. Budget 1 is the learner's main
prediction (`logits`, per-example `correct`, score `aa`); every larger budget k adds extra
logits named `budget_{k}x` (scored as `budget_{k}x/error`, `budget_{k}x/correct`) and a
per-example score `aa_{k}x`.
"""

from __future__ import annotations

BUDGETS = (1, 2, 4)


def logits_name(budget: int) -> str | None:
    """The extra-logits name of a budget (None: budget 1 is the main prediction)."""
    return None if budget == 1 else f"budget_{budget}x"


def metric_name(budget: int, metric: str) -> str:
    """A metric of a budget's prediction, e.g. `error` or `budget_2x/error`."""
    name = logits_name(budget)
    return metric if name is None else f"{name}/{metric}"


def aa_name(budget: int) -> str:
    """The per-example asymptotic-alignment score of a budget: `aa`, `aa_2x`, `aa_4x`."""
    return "aa" if budget == 1 else f"aa_{budget}x"


AA_SCORES = {k: aa_name(k) for k in BUDGETS}
