"""The chaos run: the real processes under faults, proving nothing is lost and nothing is duplicated."""
