"""Start-up of an ``mlci`` process: the garbage collector waits while a command loads its
libraries.

A stage loads pandas, pyarrow, SciPy, scikit-learn and pandera: about 300,000 objects that live
as long as the process. While they load, CPython's collector runs its full collections over all
of them and finds nothing to free: 0.15-0.35 s of every stage's start-up, a fifth of it
(docs/benchmarks.md). So the console script (``mlci.cli.entry``) calls :func:`pause` first, and
each command calls :func:`loaded` once its imports are done, before it touches data. ``loaded``
also freezes what is loaded, so later collections skip those objects too.

A process that imports ``mlci`` as a library (the tests, the BentoML service) never pauses, and
a command that does not call ``loaded`` (the short ones that only call git, DVC or a URL) simply
runs without the collector until it exits.
"""

from __future__ import annotations

import gc


def pause() -> None:
    """Stop collecting garbage until :func:`loaded`. Only the console script calls this."""
    gc.disable()


def loaded() -> None:
    """The command's modules are imported: freeze them, then collect as usual from here on."""
    if gc.isenabled():  # not paused (main() called in a test or from Python): leave it alone
        return
    gc.freeze()
    gc.enable()
