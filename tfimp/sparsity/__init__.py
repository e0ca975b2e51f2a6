"""The sparsity engine: schedules (when and how much), masks (which weights, as pure functions),
the wrapper that owns the mask variables and its registry of prunable weights, `prune`/`strip`/
`update_masks`, the callbacks that drive masks during `fit`, and the sparsity report."""
