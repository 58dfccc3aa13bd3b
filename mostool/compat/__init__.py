"""Compatibility layers for programs written against other monitoring APIs.

``mostool.compat.mos`` offers mOS 0.3's C monitoring API (``mtcp_*`` calls, ``MOS_*``
constants, the man pages' return conventions) as a thin facade over mostool's Pythonic API, so
that mOS programs port line by line. See docs/mos_to_mostool.md for the side-by-side table.
"""
