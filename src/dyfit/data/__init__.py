"""Event tables and their files (Parquet, ROOT, CSV)."""
