"""What happens to a run: submit, run directory, journal, status, follow, cancel, shell."""
