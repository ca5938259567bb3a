import os

# One BLAS and OpenMP thread in the test processes and in every process they start (inherited:
# pipeline stages, servers, the search); set here, before conftest.py imports numpy. The suite
# runs one test per core on small tables, where a second thread only waits and spins: 0.2-0.3 s
# of CPU in every scikit-learn stage, taken from the other worker (docs/benchmarks.md). Arrays
# this small are never split across threads, so no result changes. A value already set is
# kept; the pipeline itself sets none.
THREAD_LIMITS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
for _threads in THREAD_LIMITS:
    os.environ.setdefault(_threads, "1")
