"""Adapters from CartPilot's ports to the services it runs on."""
