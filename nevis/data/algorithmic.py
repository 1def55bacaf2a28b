"""Algorithmic tasks for upward generalisation, generated on the fly (no downloads).

Both tasks have per-element binary labels and a size knob, so a model trained on small inputs
can be tested on larger ones, where it needs more iterations to solve them (Bansal et al. 2022;
Anil et al. 2022).

- **Prefix sums**: a string of i.i.d. fair bits; the label at position i is the parity of the
  running sum, (b_0 + ... + b_i) mod 2. `length` is the number of bits.
- **Mazes**: perfect mazes (a spanning tree of the cell grid, so exactly one path joins any
  two cells) carved by randomised depth-first search. An n×n maze (n odd) is an n×n pixel
  grid whose (n − 1)/2 × (n − 1)/2 cells sit at odd coordinates, with the walls between and
  around them; e.g. 9×9 has 4×4 cells, 33×33 has 16×16. (Bansal et al.'s "9×9" counts cells
  and renders to larger images; their 9×9 mazes have as many cells as a 19×19 one here.)
  Start and goal are two distinct random cells. Input channels: open, start, goal (0/1);
  label: 1 on the pixels of the path from start to goal (cells and the gaps between them).

Generators take a `numpy.random.Generator`, so a seed fixes the data exactly.
"""

from __future__ import annotations

import numpy as np

TASKS = ("prefix_sums", "mazes")


def prefix_sums(rng: np.random.Generator, num: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """`num` random bit strings of `length` bits and their running parities.

    Returns (bits [num, length] float32 in {0, 1}, labels [num, length] int32 in {0, 1}).
    """
    if length < 1 or num < 0:
        raise ValueError(f"prefix_sums needs length >= 1 and num >= 0, got {length=}, {num=}.")
    bits = rng.integers(0, 2, size=(num, length), dtype=np.int32)
    labels = np.bitwise_and(np.cumsum(bits, axis=1), 1).astype(np.int32)
    return bits.astype(np.float32), labels


def check_maze_size(size: int) -> None:
    """An n×n maze needs an odd n >= 5 (at least 2×2 cells)."""
    if size < 5 or size % 2 == 0:
        raise ValueError(f"maze size must be odd and >= 5 (cells at odd pixels), got {size}; "
                         "use e.g. 9, 13, 17, ... 33.")


_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _carve(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Open pixels [n, n] (bool) of a perfect maze: iterative randomised depth-first search."""
    n = 2 * cells + 1
    open_ = np.zeros((n, n), bool)
    visited = np.zeros((cells, cells), bool)
    start = (int(rng.integers(cells)), int(rng.integers(cells)))
    visited[start] = True
    open_[2 * start[0] + 1, 2 * start[1] + 1] = True
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [(r + dr, c + dc) for dr, dc in _STEPS
                   if 0 <= r + dr < cells and 0 <= c + dc < cells and not visited[r + dr, c + dc]]
        if not options:
            stack.pop()
            continue
        nr, nc = options[int(rng.integers(len(options)))]
        visited[nr, nc] = True
        open_[2 * nr + 1, 2 * nc + 1] = True
        open_[r + nr + 1, c + nc + 1] = True  # the wall pixel between the two cells
        stack.append((nr, nc))
    return open_


def maze_path(open_: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> np.ndarray:
    """Pixels [n, n] (bool) on the shortest open path from start to goal (breadth-first).

    In a perfect maze this is the only simple path. Raises if goal is unreachable.
    """
    n = open_.shape[0]
    parent = -np.ones((n, n, 2), np.int64)
    parent[start] = start
    queue, head = [start], 0
    while head < len(queue):
        r, c = queue[head]
        head += 1
        if (r, c) == goal:
            break
        for dr, dc in _STEPS:
            nr, nc = r + dr, c + dc
            if 0 <= nr < n and 0 <= nc < n and open_[nr, nc] and parent[nr, nc, 0] < 0:
                parent[nr, nc] = (r, c)
                queue.append((nr, nc))
    if parent[goal][0] < 0:
        raise ValueError(f"goal {goal} is not reachable from start {start}")
    path = np.zeros((n, n), bool)
    node = goal
    while node != start:
        path[node] = True
        node = tuple(int(v) for v in parent[node])
    path[start] = True
    return path


def mazes(rng: np.random.Generator, num: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`num` random size×size mazes and their solution paths.

    Returns (inputs [num, size, size, 3] float32: open, start, goal channels;
    labels [num, size, size] int32: 1 on the path from start to goal).
    """
    check_maze_size(size)
    cells = (size - 1) // 2
    inputs = np.zeros((num, size, size, 3), np.float32)
    labels = np.zeros((num, size, size), np.int32)
    for i in range(num):
        open_ = _carve(rng, cells)
        a, b = rng.choice(cells * cells, size=2, replace=False)
        start = (2 * int(a // cells) + 1, 2 * int(a % cells) + 1)
        goal = (2 * int(b // cells) + 1, 2 * int(b % cells) + 1)
        inputs[i, ..., 0] = open_
        inputs[i, start[0], start[1], 1] = 1.0
        inputs[i, goal[0], goal[1], 2] = 1.0
        labels[i] = maze_path(open_, start, goal)
    return inputs, labels


def generate(task: str, rng: np.random.Generator, num: int, size: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of `task` at `size` (bits for prefix sums, pixels per side for mazes).

    Inputs always carry a trailing channel axis: [num, L, 1] bits or [num, n, n, 3] mazes;
    labels have the spatial shape without it.
    """
    if task == "prefix_sums":
        bits, labels = prefix_sums(rng, num, size)
        return bits[..., None], labels
    if task == "mazes":
        return mazes(rng, num, size)
    raise ValueError(f"unknown algorithmic task {task!r}; valid choices: {', '.join(TASKS)}.")
