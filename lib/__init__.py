"""The course library."""
