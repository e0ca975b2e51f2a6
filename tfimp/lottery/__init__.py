"""The IMP driver: one config object (`IMPConfig`), rounds with rewinding, resumable run folders,
progress and plots (`report`), and the per-layer sensitivity analysis."""
