"""Pure planning: job x site -> tasks, and the argv that runs one task."""
