"""CartPilot infrastructure: one CDK stack per brand, built from constructs per concern."""

import os

# The CDK libraries run on an embedded Node.js runtime that prints a banner on every start when the
# machine's Node release is past its end of life; CI logs and synth output stay readable without it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
