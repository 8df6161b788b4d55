"""The press office itself: its people's accounts and their logins, its address book of
press contacts (and, next, its identity: name, logo, address)."""
