"""What is on disk: the journal format, offline sessions, resume, and sessions compared."""
