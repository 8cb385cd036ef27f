"""Adapters: working implementations of the ports in `ivr.ports`."""
