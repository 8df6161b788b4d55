"""Releases: their source (Markdown + front matter, or API fields, checked into a draft),
their lifecycle in the database (create, publish, schedule, correct, withdraw), their
media and the topics they belong to."""
