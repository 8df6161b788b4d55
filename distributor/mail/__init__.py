"""Email: compose a release once and personalise it per recipient (``compose``), send it over
SMTP or into a Maildir outbox (``transport``), and sign it with DKIM (``dkim``)."""
