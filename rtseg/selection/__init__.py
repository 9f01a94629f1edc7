"""Speed against accuracy on this machine: cached profiles, the Pareto choice for a target frame rate,
and the controller that switches models while running."""
