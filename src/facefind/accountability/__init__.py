"""Accountability: lawful basis per collection, consent, opt-outs, erasure with receipts, the audit log."""
