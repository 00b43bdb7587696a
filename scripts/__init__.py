"""Operational scripts (AWS workflow, local emulators). Each module also runs as a script."""
