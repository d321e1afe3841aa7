"""Orchestrators: thin drivers around one scheduling loop and the one ``run_step``."""
