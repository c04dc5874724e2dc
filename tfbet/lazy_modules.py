"""Modules imported on first use, so a binary's --help and its JSON-only tools stay light.

``--help`` needs a binary's flag definitions only, and ``bin/compare`` / ``bin/energy_budget``
read result files; neither needs TensorFlow, which takes 10-60 s to import on a loaded machine
(docs/design.md, §2). A module that needs TensorFlow for part of its work names its heavy imports
with :func:`module`: the name stays bound as usual, and the real import happens at the first
attribute read (or write, e.g. by a test's monkeypatch).
"""
import importlib
import types


class _LazyModule(types.ModuleType):
  """Stands for a module until one of its attributes is used, then forwards to it."""

  def _load(self):
    return importlib.import_module(self.__name__)

  def __getattr__(self, name):
    return getattr(self._load(), name)

  def __setattr__(self, name, value):
    setattr(self._load(), name, value)

  def __delattr__(self, name):
    delattr(self._load(), name)

  def __dir__(self):
    return dir(self._load())


def module(name):
  """The module ``name``, imported when an attribute of it is first used."""
  return _LazyModule(name)
