"""Local SageMaker emulator: moto + registry + runtime + built-in stand-ins on 127.0.0.1."""
