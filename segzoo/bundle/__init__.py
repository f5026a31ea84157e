"""The bundle contract: which keys a bundle's configs must have, the checks they call, metric wiring, and which
workflow is running (docs/architecture.md)."""
