"""The face age-predictor track of the NeurIPS 2023 Machine Unlearning Challenge."""
