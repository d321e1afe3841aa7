"""Where a step executes: ``run_step`` and what it needs (context, caching, logs)."""
