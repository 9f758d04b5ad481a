"""Raw files in, processed interactions out: ingestion, metadata, content features, processing and the splits."""
