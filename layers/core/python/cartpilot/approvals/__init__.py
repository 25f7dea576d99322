"""Approvals: the model and store port, signed links, the approval request, the desk and the page."""
