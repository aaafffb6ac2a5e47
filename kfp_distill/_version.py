"""The package's version, in a module of its own: the package's top level imports modules that need it."""

__version__ = "0.1.0"
