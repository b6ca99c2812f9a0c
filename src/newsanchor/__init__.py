"""newsanchor: a virtual news anchor from a consenting person's own recordings."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("newsanchor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
