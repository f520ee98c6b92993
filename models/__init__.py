"""The vocabulary every part of icpflow shares: pydantic models, enums and pure helpers. No I/O."""
