"""Speaking to Huawei Cloud: the transport, signing, credentials, answers and the ModelArts client.

Everything that sends a request or reads an answer lives here; what to send is decided elsewhere.
May import the package's base modules (`exceptions`, `vocabulary`, `functiongraph`) and nothing
else of ours: not `events`, not `cleanup`, not the settings.
"""
