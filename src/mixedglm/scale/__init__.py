"""Scale-out on Dask: the same fits as in memory, on data split over the workers of a cluster.

The likelihood of a model with one grouping factor (and the conditional likelihood of a
fixed-effects model) is a sum over independent top-level clusters, so it distributes
exactly: the rows are shuffled once so that every cluster lies whole in one partition, each
partition's design and engine are built and kept on its worker, and each Newton step sums
the workers' log-likelihoods, gradients and Hessians on the client.

* :mod:`mixedglm.scale.partition`: the worker side (pandas and numpy only): one partition's
  design, the engines kept in worker memory between iterations, the per-worker operations;
* :mod:`mixedglm.scale.frame`: the data side on the client (reading, restricting, shuffling,
  the global pass that agrees factor levels and counts missing values, building on the
  workers), in steps the other models reuse;
* :mod:`mixedglm.scale.conditional`, :mod:`mixedglm.scale.hybrid`: the worker side of the
  conditional fixed-effects models and of the hybrid model's decomposition;
* :mod:`mixedglm.scale.session`: the Dask client (an existing one, or a LocalCluster that is
  started and closed).

Nothing in this package is imported by the core modules: ``import mixedglm`` never imports
Dask.
"""
