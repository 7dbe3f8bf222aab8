"""Builds libgpt.so with the repository's Makefile and puts it inside the
package, so that `pip install ./python` gives a package that works on its
own. Where there is no repository around this folder (an sdist unpacked
elsewhere), nothing is built and the package looks for an installed libgpt
at run time (see gpt/_lib.py).

    GPT_MAKE_FLAGS="CUDA=1" pip install ./python    # a CUDA build
    GPT_NO_BUILD=1 pip install ./python             # use an installed libgpt
"""
import glob
import os
import shlex
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        if os.environ.get("GPT_NO_BUILD") or not os.path.exists(os.path.join(REPO, "Makefile")):
            return
        flags = shlex.split(os.environ.get("GPT_MAKE_FLAGS", ""))
        jobs = "-j%d" % (os.cpu_count() or 1)
        subprocess.run(["make", "-C", REPO, jobs, *flags, "shared"], check=True)
        out = subprocess.run(["make", "-s", "-C", REPO, *flags, "print-shlib"], check=True,
                             capture_output=True, text=True).stdout.strip()
        dst = os.path.join(self.build_lib, "gpt")
        for old in glob.glob(os.path.join(dst, "libgpt.so*")):
            os.remove(old)
        shutil.copy2(os.path.join(REPO, out), os.path.join(dst, "libgpt.so"))


class BinaryDistribution(Distribution):
    """The wheel holds a compiled library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
