"""The community service's own error codes: `shared.errors.ErrorCode` constants, raised as
`raise errors.SOME_CODE()` and listed on a route with `responses=documented(...)`. The common
ones (NOT_FOUND, FORBIDDEN, ...) are in shared/errors.py. The service has no codes of its own yet.
"""
