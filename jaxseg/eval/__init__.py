"""Evaluation: Hungarian-matched clustering metrics, linear probes, reports and raw baselines."""
