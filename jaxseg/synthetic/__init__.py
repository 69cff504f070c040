"""The built-in default dataset: procedural indoor scenes written in the ScanNet export format."""
