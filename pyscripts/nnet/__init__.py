"""The paper's frame-level ConvNet: model, data pipeline, training stage and inference."""
