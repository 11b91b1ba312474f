"""abkit: trustworthy A/B tests of text classifiers, from notebooks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("abkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
