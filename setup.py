"""Builds tfbet and its compiled TensorFlow op library (tfbet/_tfbet_ops*.so).

The op is compiled with exactly the flags TensorFlow reports through
``tf.sysconfig.get_compile_flags()`` / ``get_link_flags()`` (C++17, TensorFlow's ABI flag).
The CUDA kernel (``custom_ops/*.cu.cc``) is only built when ``TFBET_BUILD_CUDA=1`` is set,
``nvcc`` is on the PATH and TensorFlow was built with CUDA; the CPU build never needs it.
Extra nvcc flags (e.g. ``-gencode arch=compute_90,code=sm_90`` for an H100/H200) go in
``TFBET_NVCC_FLAGS``; use an nvcc of the CUDA major version TensorFlow was built with (the op
uses TensorFlow's CUDA runtime: libtensorflow_framework.so.2 exports the CUDA runtime functions
that nvcc's code calls, so no libcudart is linked, and ``-z defs`` makes a missing one a link
error rather than a load error).
"""
import glob
import importlib.util
import os
import re
import shlex
import shutil
import subprocess

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py


def _tf_flags():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags(), tf


def _nvcc_cuda_version():
  """CUDA release of the nvcc on the PATH ("12.5"), or None if it does not say."""
  output = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout
  match = re.search(r"release (\d+\.\d+)", output)
  return match.group(1) if match else None


class BuildTfOp(build_ext):
  """Compiles the custom op against the installed TensorFlow."""

  def build_extensions(self):
    compile_flags, link_flags, tf = _tf_flags()
    cuda_objects = self._maybe_build_cuda(compile_flags, tf)
    for ext in self.extensions:
      # -ffp-contract=off: no fused multiply-adds, so the uniforms are bit-identical everywhere;
      # -fno-math-errno lets sqrt vectorize (it is never given a negative number).
      ext.extra_compile_args = list(compile_flags) + ["-O3", "-fPIC", "-Wno-sign-compare",
                                                      "-ffp-contract=off", "-fno-math-errno"]
      ext.extra_link_args = list(link_flags)
      if cuda_objects:
        ext.extra_compile_args.append("-DGOOGLE_CUDA=1")
        ext.extra_objects = cuda_objects
        ext.extra_link_args.append("-Wl,-z,defs")  # CUDA runtime from TensorFlow's framework
    # distutils adds -Wstrict-prototypes (C only) to the C++ compile line; drop it.
    if "-Wstrict-prototypes" in getattr(self.compiler, "compiler_so", []):
      self.compiler.compiler_so.remove("-Wstrict-prototypes")
    super().build_extensions()

  def _maybe_build_cuda(self, compile_flags, tf):
    sources = sorted(glob.glob("custom_ops/*.cu.cc"))
    wanted = os.environ.get("TFBET_BUILD_CUDA") == "1"
    if not (wanted and sources and shutil.which("nvcc") and tf.test.is_built_with_cuda()):
      return []
    tf_cuda = tf.sysconfig.get_build_info().get("cuda_version", "")
    nvcc_cuda = _nvcc_cuda_version()
    if nvcc_cuda and nvcc_cuda.split(".")[0] != tf_cuda.split(".")[0]:
      print(f"warning: nvcc is CUDA {nvcc_cuda} but TensorFlow was built with CUDA {tf_cuda}; "
            "the kernel runs on TensorFlow's CUDA runtime, use an nvcc of the same major version")
    objects = []
    os.makedirs(self.build_temp, exist_ok=True)
    for source in sources:
      obj = os.path.join(self.build_temp, os.path.basename(source) + ".o")
      subprocess.check_call(["nvcc", "-c", source, "-o", obj, "-DGOOGLE_CUDA=1", "-x", "cu",
                             "-Xcompiler", "-fPIC", "--expt-relaxed-constexpr",
                             "--fmad=false"]
                            + list(compile_flags)
                            + shlex.split(os.environ.get("TFBET_NVCC_FLAGS", "")))
      objects.append(obj)
    return objects


class BuildPyWithGinConfigs(build_py):
  """Ships the repository's gin/ directory inside the package as tfbet/gin_configs."""

  def run(self):
    super().run()
    if self.editable_mode:  # an editable install reads gin/ from the checkout
      return
    target = os.path.join(self.build_lib, "tfbet", "gin_configs")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree("gin", target)


ops_library = Extension(
    "tfbet._tfbet_ops",
    sources=sorted(s for s in glob.glob("custom_ops/*.cc") if not s.endswith(".cu.cc")),
    depends=sorted(glob.glob("custom_ops/*.h")),
    language="c++",
)


def _binaries():
  """The binaries' names: the table of tfbet/cli/launch.py (read without importing tfbet), which
  starts each console script tfbet-<name>, as it starts bin/<name>."""
  spec = importlib.util.spec_from_file_location("_tfbet_launch", "tfbet/cli/launch.py")
  launch = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(launch)
  return tuple(launch.BINARIES)


def _requirements(path):
  with open(path, encoding="utf-8") as f:
    return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]


setup(
    name="tfbet",
    version="0.1.0",
    description="Bit error robustness for quantized Keras models (RQUANT, CLIPPING, RANDBET)",
    packages=find_packages(include=["tfbet", "tfbet.*"]),
    ext_modules=[ops_library],
    cmdclass={"build_ext": BuildTfOp, "build_py": BuildPyWithGinConfigs},
    install_requires=_requirements("requirements.txt"),
    # pip install tfbet[beam]: chip evaluation on Apache Beam runners (tfbet/beam_evaluation.py).
    extras_require={"beam": _requirements("requirements-beam.txt")},
    entry_points={"console_scripts": [
        f"tfbet-{name.replace('_', '-')} = tfbet.cli.launch:console_script"
        for name in _binaries()]},
    python_requires=">=3.10",
)
