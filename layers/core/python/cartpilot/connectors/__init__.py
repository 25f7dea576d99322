"""Connectors: the merchant-facing ports' adapters and the client they share."""
