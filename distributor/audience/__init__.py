"""Who receives releases: subscribers (addresses, CSV import and export), self-service
subscription requests (double opt-in), and privacy (export and erasure, the suppression
list)."""
