"""CartPilot core: the domain, the policies and the adapters shared by every function."""

__version__ = "0.1.0"
