// Compiled once to produce the precompiled header every target reuses.
