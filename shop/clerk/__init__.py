"""Everything that speaks Clerk's or Svix's protocols lives in this package.

Nothing outside it imports `jwt`, `svix` or talks HTTP to Clerk.
"""
