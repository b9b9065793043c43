"""Training: deterministic batches (``stream``), the one step over phases (``step``), checkpoints
(``checkpoint``) and the loop that keeps the cadence (``loop``)."""
