"""The one call path for every LLM request: cache, ledger, retries, concurrency and budget."""
