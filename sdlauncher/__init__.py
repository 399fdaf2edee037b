"""The launcher: renders the model repository from the YAML, starts tritonserver, watches and reloads its models."""
