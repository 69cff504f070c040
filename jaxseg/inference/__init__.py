"""Labelling new scans with a trained run: `jaxseg.load(run).predict(points, colors)`."""
