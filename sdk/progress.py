"""The one progress bar: tqdm on stderr when it is installed, silent otherwise.

Runtime-light: tqdm is imported only when a bar is actually shown, and a missing tqdm is
never an error (the bar is simply not drawn). SKUGEN_NO_PROGRESS=1 hides every bar, and
`quiet_stdout()` keeps third-party bars (NNCF's rich bars on stdout) off stdout.

    with progress(len(items), desc="bench", unit="cell") as bar:   # progress(total, initial, desc, ...)
        for it in items:
            ...
            bar.update(1, label=f"{it} done")
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator


def hidden() -> bool:
    """True when SKUGEN_NO_PROGRESS asks for no bars."""
    from . import config

    return config.get_bool("SKUGEN_NO_PROGRESS")


class Progress:
    """A tqdm bar on stderr, or a silent stand-in with the same few methods."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "it", enabled: bool = True,
                 min_total: int = 0, **tqdm_kw: Any) -> None:
        self.bar = None
        if not enabled or total < min_total or hidden():
            return
        try:
            from tqdm import tqdm
        except ImportError:  # optional: no bar, no error
            return
        tqdm_kw.setdefault("dynamic_ncols", True)
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, **tqdm_kw)

    def update(self, n: int = 1, label: str | None = None) -> None:
        """Advance by `n`; `label` (cut to 60 characters) is shown after the bar."""
        if self.bar is not None:
            if label is not None:
                self.bar.set_postfix_str(label[:60], refresh=False)
            self.bar.update(n)

    def step(self, label: str, n: int = 1) -> None:
        self.update(n, label)

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(refresh=refresh, **values)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(total: int, initial: int = 0, desc: str = "", unit: str = "it", enabled: bool = True,
             **tqdm_kw: Any) -> Progress:
    """A `Progress` over `total` steps, starting at `initial` (a resumed run). Long loops that log to a
    file (training) pass mininterval=2.0; any other tqdm keyword is passed on."""
    return Progress(total, initial, desc=desc, unit=unit, enabled=enabled, **tqdm_kw)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send what a third-party library prints (its progress bars) to stderr, or nowhere under
    SKUGEN_NO_PROGRESS=1, so stdout stays clean for `--json`."""
    if hidden():
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            yield
    else:
        with contextlib.redirect_stdout(sys.stderr):
            yield
