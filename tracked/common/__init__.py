"""Values, options, results and texts every layer uses; imports nothing of tracked above it."""
