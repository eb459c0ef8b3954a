"""MCR: a userspace multicast relay for Linux (io_uring + AF_PACKET engine)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mcr")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"
