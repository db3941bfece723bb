"""raw tables -> features: the data contract, validation and quarantine, the synthetic
generator, and (later) the ledger and point-in-time feature queries. Pure: tables in, tables out.
"""
