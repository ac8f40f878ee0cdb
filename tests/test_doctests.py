"""Every usage example in a docstring runs and prints what it says (examples that need a
real model or a long run are marked ``# doctest: +SKIP`` where they stand)."""

import doctest
import importlib
import pkgutil

import pytest

import poslens

# the package itself (walk_packages lists only what is under it), then every module but __main__,
# which runs a command when imported
MODULES = ["poslens"] + sorted(m.name for m in pkgutil.walk_packages(poslens.__path__, "poslens.")
                               if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    got = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False,
                          raise_on_error=False, verbose=False)
    assert got.failed == 0, f"{got.failed} of {got.attempted} examples in {name} fail (the output above shows which)"


def test_every_module_is_collected():
    assert len(MODULES) > 150 and {"poslens", "poslens.analyses.helix.fits"} <= set(MODULES)
