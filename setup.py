"""The one build step pyproject.toml cannot say: the site's templates/ and static/ into the wheel.

They stay at the top of the checkout (where `make run`, the editable install and the tests
use them); an installed wheel has no checkout, so the build copies both into the package as
jailadmin/site/templates and jailadmin/site/static, where jailadmin/settings.py looks when
they are not beside the packages. Everything else is in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SITE_DIRECTORIES = ("templates", "static")


class BuildPyWithSiteFiles(build_py):
    """build_py, plus templates/ and static/ copied under jailadmin/site/ in the build."""

    def run(self) -> None:
        super().run()
        for name in SITE_DIRECTORIES:
            self.copy_tree(str(HERE / name), str(Path(self.build_lib, "jailadmin", "site", name)))


setup(cmdclass={"build_py": BuildPyWithSiteFiles})
