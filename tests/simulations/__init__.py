"""Fast tests of the placement simulations (simulations/)."""
