"""What the press office reads about its sending: a release's status and report, the
dashboard's figures and the Prometheus metrics."""
