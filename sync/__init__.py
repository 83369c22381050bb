"""The ledger and the steps that work on it: ingest, reconcile, metrics, push, run history."""
