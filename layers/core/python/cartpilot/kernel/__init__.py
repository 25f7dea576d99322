"""The small shared kernel: money, time, observability, the signing key ring and the error bases."""
