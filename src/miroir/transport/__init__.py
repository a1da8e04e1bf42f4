"""The one seam between Miroir and its nodes: `await transport.request(...) -> NodeResponse`."""
