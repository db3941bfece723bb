"""raw tables -> features: the data contract, validation and quarantine, the synthetic
generator, the billing/payment ledger and point-in-time features (numba kernel, pandas
oracle). Pure: tables in, tables out; files are read and written in ``pipelines``.
"""
