"""Class-conditional ECG generators (DiffWave, TimeDiffusion, TimeVQVAE) and their training."""
