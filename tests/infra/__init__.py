"""Infrastructure tests: CDK templates, cdk-nag and cfn-lint."""

# Imported first so its environment defaults apply before anything starts the CDK's Node.js runtime.
import infra  # noqa: F401
