"""Monte-Carlo layer: simulated Hessian blocks in torch (CPU/GPU)."""
