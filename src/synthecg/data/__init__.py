"""Data stages: PhysioNet download, record reading and QC, splits, and the HDF5 store."""
