"""Where a run goes: ClearML, the journal on disk, a local fallback, the console, the terminal."""
