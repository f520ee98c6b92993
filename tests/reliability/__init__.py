"""Reliability evidence: crashes, dependency faults, held load (issue 6)."""
