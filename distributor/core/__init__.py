"""The ground floor, imported by everything above and importing nothing above it: settings
(the only reader of the environment), the error tree, the database and its models, links
and signed tokens, translations and formats, logs, input sanitising, durable writes,
failpoints, the audit trail, idempotency keys, API tokens and admin sessions, the broker
and the task queue."""
