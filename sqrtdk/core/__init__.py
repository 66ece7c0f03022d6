"""sqrtdk's numerical core: pure functions of arrays and seeds, with no files, registry or global state.

- `theory`: closed forms for the scores' moments and density, and the random-energy-model softmax forms;
- `rules`: the scaling rules, the constant c each applies to the logits, and how each is named;
- `sampling`: seeded query and key blocks (direct entries, or tokens through a projection);
- `moments`: streaming power sums, the jackknife and batch-means intervals, the shares' exact intervals;
- `scores`: the streamed moments and histogram of q.k and cos(q, k) (the variance experiment's kernel);
- `rows`: the per-query-row softmax statistics of sampled attention matrices (saturation, gradient);
- `softmax`: the stable softmax statistics of one row; `multihead`: a multi-head attention forward pass.
"""
