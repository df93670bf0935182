"""Shared by the tests of the TouchDesigner fake (test_tdfake*.py) and of the
network built in it (test_td.py)."""

import os
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tdfake import TD  # noqa: E402


def code(text):
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def td(tmp_path):
    return TD(project_folder=str(tmp_path), project_name="demo")


@pytest.fixture
def comp(td):
    return td.root.create("baseCOMP", "project1")


EXECUTE_TOGGLES = ("start", "create", "exit", "framestart", "frameend", "projectpresave", "projectpostsave")


def execute_dat(comp, name, text):
    """An Execute DAT with every callback toggle on, as a build script turns them on."""
    dat = comp.create("executeDAT", name)
    dat.text = code(text)
    for toggle in EXECUTE_TOGGLES:
        setattr(dat.par, toggle, True)
    return dat


def parameter_watcher(comp, text):
    """A Parameter Execute DAT watching comp's custom parameters, every toggle set."""
    watcher = comp.create("parameterexecuteDAT", "parexec")
    watcher.text = code(text)
    watcher.par.op = comp
    watcher.par.pars = "*"
    watcher.par.custom = True
    watcher.par.builtin = False
    watcher.par.valuechange = True
    watcher.par.onpulse = True
    watcher.par.valueschanged = False
    return watcher


def script_chop(comp, callbacks_text, name="out"):
    """A Script CHOP with callbacks_text in the callbacks DAT create() docked to it."""
    chop = comp.create("scriptCHOP", name)
    cb = chop.par.callbacks.eval()
    cb.text = code(callbacks_text)
    return chop, cb
