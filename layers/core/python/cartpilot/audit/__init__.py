"""The audit trail: the hash chain and its verification, masking, plan snapshots, and the records port."""
