"""Identity resolution: who is who across the sources (see ``sync/reconcile.py``)."""
