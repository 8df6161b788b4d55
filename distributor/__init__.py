"""distributor: publish a press release once; email it to every subscriber and update the feeds."""

__version__ = "0.1.0"
