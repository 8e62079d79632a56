"""The jobs that compose the stages: the nightly run, its keytrail.toml, alert sinks and retention (prune)."""
