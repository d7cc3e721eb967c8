"""Packaging hook: records the checkout this package is installed from, so it can find the built library.

pip copies the package into site-packages; the generated ``flexattention_swift/_checkout.py`` remembers the
repository root (the folder above this file, when it holds Package.swift) so that ``.build/release/
libflexattention.so`` there is found without setting ``FLEXATTENTION_LIBRARY``. No compiler is involved.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def _checkout():
    root = os.path.dirname(HERE)
    return root if os.path.exists(os.path.join(root, "Package.swift")) else None


class BuildPyRecordingCheckout(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "flexattention_swift", "_checkout.py")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write('"""Generated at install time by setup.py: the checkout this package was built from."""\n')
            f.write(f"CHECKOUT = {_checkout()!r}\n")


setup(cmdclass={"build_py": BuildPyRecordingCheckout})
