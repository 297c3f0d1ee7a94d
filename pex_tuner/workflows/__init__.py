"""Multi-step flows built from the library's rooms: the offline tuning run, the OPE report,
learning and distilling interpretable policies, the online demo.

The CLI parses arguments and calls one of these; notebooks and scripts may call them too.
"""
