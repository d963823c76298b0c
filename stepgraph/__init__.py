"""stepgraph: plan an instruction into a graph of steps, run them in parallel, verify, remember."""
