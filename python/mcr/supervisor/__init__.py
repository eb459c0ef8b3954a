"""The daemon's supervisor: rules, privileges, workers and the control socket."""

from .supervisor import Supervisor

__all__ = ["Supervisor"]
