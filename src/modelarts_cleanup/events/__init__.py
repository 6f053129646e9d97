"""What arrives and what it means: envelopes, the payload, the rules, and every check of them.

An event goes one way down, in `intake`: recognised, unwrapped, validated, then checked against
what the settings allow. Pure: nothing here sends a request or reads the environment.
May import the package's base modules (`exceptions`, `vocabulary`) and nothing else of ours.
"""
