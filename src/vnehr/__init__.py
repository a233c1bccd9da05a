"""vnehr: the health-data exchange behind Vietnam's electronic health book on VNeID."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vnehr")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
