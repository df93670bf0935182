"""A fake of the TouchDesigner Python API for tests (see /work/shared/TOUCHDESIGNER.md).

    td = TD(project_folder=..., project_name=...)
    comp = td.root.create("baseCOMP", "DataNet")
    ...
    td.start(); td.run_frames(10); td.exit()
"""

from .core import TD
from .errors import TDError, ThreadViolation

__all__ = ["TD", "TDError", "ThreadViolation"]
