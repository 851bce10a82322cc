"""Campaigns: a config, stages of work items, and their state in the results store."""
