"""Will it fit? Estimates of the memory and disk a command needs, checked before anything is planned or written.

A command that cannot fit is refused with one line naming the flag, the estimate and what is available, rather
than growing until the machine runs out (``--replicates 100000000``). Two moments: before planning, the memory
the plan itself needs and one network on the device (:func:`check_capacity`, :func:`check_member`, naming the
flag that sets the size); before the executor writes anything, the disk the runs *still to train* need under the
store (:func:`check_store`: the whole graph a command or a recipe runs, less what the store holds already).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lth.errors import UserError, ref

if TYPE_CHECKING:
    from lth.graph import Node

# what planning holds per run (a node, its record, its references): measured at about 2 KB; kept generous
PLAN_BYTES_PER_RUN = 8 * 1024
STATES_PER_RUN = 3  # init, final, and a checkpoint while training


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.0f} EB"


def host_memory_available() -> int:
    """Bytes of host memory available now (all physical memory when the OS does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def disk_free(root: Path) -> int:
    """Free bytes on the file system that holds ``root`` (or its nearest existing parent)."""
    p = Path(root).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def _name(field: str) -> str:
    """A field's path (``replicates``) as a reference rendered per face; a CLI flag (``--replicates``) as it is."""
    return field if field.startswith("-") else ref(field)


def check_capacity(flag: str, value: object, runs: int) -> None:
    """UserError when ``runs`` runs cannot be planned in host memory. ``flag``/``value`` name what the user should
    change."""
    plan = runs * PLAN_BYTES_PER_RUN
    avail = host_memory_available()
    if plan > avail:
        raise UserError(f"{_name(flag)} {value}: {runs} runs would need about {_human(plan)} of memory just to plan; "
                        f"{_human(avail)} is available")


def check_store(nodes: Sequence[Node], params: Callable[[Node], int], root: Path | None = None) -> None:
    """UserError, before anything is written, when the runs of ``nodes`` that the store does not hold finished
    yet cannot be stored on the disk that holds them: :data:`STATES_PER_RUN` float32 copies of each network
    (``params(node)`` parameters) plus the states a node is asked to keep besides (``save_states``). Runs already
    finished need nothing more, so a resumed command asks only for what is left. Names the store (``root``; None:
    the folder the runs share) and the sizes."""
    from lth.store import RunDir

    todo = [n for n in nodes if not RunDir(n.path).has_done()]
    if not todo:
        return
    sizes = [params(n) for n in todo]
    need = sum(p * 4 * (STATES_PER_RUN + len(n.keep)) for n, p in zip(todo, sizes, strict=True))
    if root is None:
        root = Path(os.path.commonpath([str(Path(n.path).resolve()) for n in todo]))
    free = disk_free(root)
    if need > free:
        raise UserError(f"{ref('root')} {root}: the {len(todo)} runs still to train would store about "
                        f"{_human(need)} of weights ({STATES_PER_RUN} states of up to {max(sizes)} parameters "
                        f"each); {_human(free)} is free there; free space, choose another root, or ask for fewer runs",
                        value=str(root))


def check_member(flag: str, value: object, params: int, device: torch.device) -> None:
    """UserError when one network of ``params`` parameters (weights, gradients, two optimiser moments) cannot
    fit in the training device's memory."""
    need = params * 16
    if device.type == "cuda":
        avail, _ = torch.cuda.mem_get_info(device)
    else:
        avail = host_memory_available()
    if need > avail:
        raise UserError(f"{_name(flag)} {value}: one network has {params} parameters and needs about {_human(need)} to "
                        f"train; {_human(avail)} is available on {device}")


def count_params(model: str, norm: str, width: float, example_shape: tuple[int, ...], num_classes: int) -> int:
    """Parameters of one network. Wide networks are not built: the count is a quadratic in the width for every
    family (hidden-to-hidden weights grow as width^2, input/output ones as width), fitted at widths 1, 2, 3."""
    from lth.models import num_params

    def exact(w: float) -> int:
        return num_params(model, tuple(example_shape), num_classes, norm, w)

    if width <= 4:
        return exact(width)
    p1, p2, p3 = exact(1.0), exact(2.0), exact(3.0)
    c = (p3 - 2 * p2 + p1) / 2
    b = p2 - p1 - 3 * c
    a = p1 - b - c
    return int(a + b * width + c * width * width)
