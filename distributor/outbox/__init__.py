"""The outbox: the ledger of every email owed (claimed with a lease, recorded row by row),
the send loops that work through it, the sweep that repairs lost wake-ups, throttling,
relay health and bounces."""
