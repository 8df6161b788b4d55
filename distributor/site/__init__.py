"""The public site: the static builder, the newsroom pages, the RSS, Atom and JSON feeds
(the only feedgen importer), and WebSub pings."""
