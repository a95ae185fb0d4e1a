"""Run models over forget / retain splits, collect metrics, write tables, pictures and a report."""
