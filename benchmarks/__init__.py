"""Reproducible comparisons of MCR against socat and kernel multicast forwarding (see run.py)."""
