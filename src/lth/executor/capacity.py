"""Will it fit? Estimates of the memory and disk a command needs, checked before anything is planned or written.

A command that cannot fit is refused with one line naming the flag, the estimate and what is available, rather
than growing until the machine runs out (``--replicates 100000000``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from lth.errors import UserError, ref

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


def check_capacity(flag: str, value: object, runs: int, params_per_run: int, root: Path,
                   device: torch.device | None = None) -> None:
    """UserError when ``runs`` runs of ``params_per_run`` parameters cannot be planned in host memory or stored
    on the disk holding ``root``. ``flag``/``value`` name what the user should change."""
    plan = runs * PLAN_BYTES_PER_RUN
    avail = host_memory_available()
    if plan > avail:
        raise UserError(f"{_name(flag)} {value}: {runs} runs would need about {_human(plan)} of memory just to plan; "
                        f"{_human(avail)} is available")
    disk = runs * params_per_run * 4 * STATES_PER_RUN
    free = disk_free(root)
    if disk > free:
        raise UserError(f"{_name(flag)} {value}: {runs} runs would store about {_human(disk)} of weights "
                        f"({STATES_PER_RUN} states of {params_per_run} parameters each); {_human(free)} is free "
                        f"under {Path(root).resolve()}")


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
