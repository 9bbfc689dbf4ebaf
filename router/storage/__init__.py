"""Durable state: tenants, keys, sessions, versions, the attempts ledger, idempotency, blob ownership."""
