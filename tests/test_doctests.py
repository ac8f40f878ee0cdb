"""Every usage example in a docstring runs and prints what it says (examples that need a
real model or a long run are marked ``# doctest: +SKIP`` where they stand)."""

import doctest
import importlib
import pkgutil
import tomllib
from pathlib import Path

import pytest

import poslens

# the package itself (walk_packages lists only what is under it), then every module but __main__,
# which runs a command when imported
MODULES = ["poslens"] + sorted(m.name for m in pkgutil.walk_packages(poslens.__path__, "poslens.")
                               if not m.name.endswith("__main__"))


FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    got = doctest.testmod(module, optionflags=FLAGS, report=False,
                          raise_on_error=False, verbose=False)
    assert got.failed == 0, f"{got.failed} of {got.attempted} examples in {name} fail (the output above shows which)"


def test_every_module_is_collected():
    assert len(MODULES) > 150 and {"poslens", "poslens.analyses.helix.fits"} <= set(MODULES)


def test_pytest_doctest_modules_reads_the_examples_as_this_test_does():
    # `pytest --doctest-modules src/poslens` takes its flags from pyproject.toml; without them it
    # failed an example whose array output is wrapped over lines
    ini = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    names = ini.get("doctest_optionflags", "").split()
    assert sum(doctest.OPTIONFLAGS_BY_NAME[n] for n in names) == FLAGS
