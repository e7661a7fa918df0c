"""What every benchmark shares: progress bars, versions and seeds, and writing
results as JSON, markdown and PNG plots.

Each benchmark's ``main(argv)`` takes ``--limit`` and ``--out`` and calls
:func:`write_outputs` once with its report (a JSON-ready dict), its markdown
summary and its figures (matplotlib, drawn off-screen).
"""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

from benchmarks.overhead import DEFAULT_OUT, loadavg, versions

__all__ = ["DEFAULT_OUT", "SEED", "progress", "environment", "seed_everything", "new_figure", "write_outputs"]

T = TypeVar("T")

#: The seed every benchmark uses unless ``--seed`` says otherwise (recorded in its JSON).
SEED = 20261122


def seed_everything(seed: int = SEED) -> int:
    """Seed Python's ``random`` (and numpy's, when loaded) and return the seed."""
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(seed % 2**32)
    return seed


def environment(packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Python, platform, CPUs, git commit, load and the versions of ``packages``
    (plus grounding, litellm, httpx, trafilatura, lxml, pydantic, openai)."""
    base = ("grounding", "litellm", "httpx", "trafilatura", "lxml", "pydantic", "openai")
    info = versions(tuple(dict.fromkeys(base + packages)))
    info["loadavg"] = loadavg()
    return info


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """``items`` with a progress bar on stderr (tqdm when installed, else a counter line)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the bench extra
        n = total if total is not None else (len(items) if hasattr(items, "__len__") else None)  # type: ignore[arg-type]
        for i, item in enumerate(items, 1):
            yield item
            print(f"\r{desc}: {i}/{n or '?'}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        return
    yield from tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=0.5, leave=True)


def new_figure(width: float = 7.0, height: float = 4.0):
    """A matplotlib figure and axes, drawn with the off-screen Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    return fig, ax


def write_outputs(out: Path, name: str, report: dict[str, Any], markdown: str,
                  figures: dict[str, Any] | None = None) -> list[Path]:
    """Write ``<name>.json``, ``<name>.md`` and ``<name>-<figure>.png`` into ``out``; return the paths."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.json", out / f"{name}.md"]
    paths[0].write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    paths[1].write_text(markdown, encoding="utf-8")
    for label, fig in (figures or {}).items():
        path = out / f"{name}-{label}.png"
        fig.tight_layout()
        fig.savefig(path)
        import matplotlib.pyplot as plt

        plt.close(fig)
        paths.append(path)
    for path in paths:
        print(f"[{name}] wrote {path}", file=sys.stderr)
    return paths
