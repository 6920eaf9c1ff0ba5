"""The contract every layer shares: config, the frame contract, the stage lifecycle, errors and
the model store. Imports nothing else of the project."""
