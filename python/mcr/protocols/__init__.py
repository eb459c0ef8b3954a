"""Routing protocols as sans-IO state machines: packets and timer ticks in, actions out."""
