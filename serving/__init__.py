"""sm-text-pipeline: a bring-your-own SageMaker container for news text."""

__version__ = "0.1.0"
