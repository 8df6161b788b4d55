"""The press office itself: its people's accounts and their logins (and, next, its address
book of press contacts and its identity: name, logo, address)."""
